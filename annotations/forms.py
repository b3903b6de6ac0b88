"""Forms of the annotator pages; the services validate again (they are also called from code)."""
from __future__ import annotations

from typing import Any

from django import forms

from .models import Study
from .services.ratings import MAX_COMMENT_CHARS


class ConsentForm(forms.Form):
    agree = forms.BooleanField(
        required=True, label="I have read the information above and agree to take part.",
        error_messages={"required": "Please tick the box to give your consent, or close this page to leave."},
    )


class RatingForm(forms.Form):
    value = forms.TypedChoiceField(coerce=int, label="Your rating")
    comment = forms.CharField(
        required=False, max_length=MAX_COMMENT_CHARS, label="Comment (optional)",
        widget=forms.Textarea(attrs={"rows": 2}),
    )

    def __init__(self, *args: Any, study: Study, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["value"].choices = [(v, str(v)) for v in range(study.scale_min, study.scale_max + 1)]
        self.fields["value"].error_messages["invalid_choice"] = (
            f"Choose a rating from {study.scale_min} to {study.scale_max}."
        )
        self.fields["value"].error_messages["required"] = "Choose a rating before submitting."


class ChoiceForm(forms.Form):
    """A best–worst (best, worst) or pairwise (best = the preferred option or "tie") answer; the service checks it."""

    best = forms.CharField(required=False, max_length=20)
    worst = forms.CharField(required=False, max_length=20)
    comment = forms.CharField(required=False, max_length=MAX_COMMENT_CHARS, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args: Any, study: Study, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.study = study


class StudyStatusForm(forms.Form):
    status = forms.ChoiceField(choices=Study.Status.choices)
