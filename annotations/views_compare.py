"""The comparative unit page (best–worst and pairwise): rendered by the item view for those study kinds."""
from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from .models import Study
from .services.units import unit_display_order


def unit_render(request: HttpRequest, context: dict[str, Any], *, seed: int, status: int = 200) -> HttpResponse:
    """Show a unit's descriptions in the order `seed` gives (the annotator's own; the preview's 0);
    nothing on the page names a system."""
    study: Study = context["study"]
    item = context["item"]
    options = unit_display_order(seed=seed, item_id=item.pk, options=list(item.options.all()))
    form = context["form"]
    data = form.data if form is not None and form.is_bound else {}
    context = context | {
        "options": [{"id": option.pk, "number": n, "text": option.text} for n, option in enumerate(options, start=1)],
        "chosen_best": str(data.get("best", "")), "chosen_worst": str(data.get("worst", "")),
        "errors": form.non_field_errors() if form is not None and form.is_bound else [],
        "va": None,  # the descriptions of one unit may come from different VA estimates; none is shown
    }
    template = "annotations/unit_bws.html" if study.kind == Study.Kind.BWS else "annotations/unit_pairwise.html"
    return render(request, template, context, status=status)
