"""Reads of the annotations app (HackSoft style: writes live in `services/`, reads here).

`study_progress` and `user_is_researcher` are reused by the research/report views.
"""
from __future__ import annotations

import statistics
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from .models import RESEARCHER_GROUP, Annotator, Assignment, Item, Rating, Study


def user_is_researcher(user: AbstractBaseUser | AnonymousUser | None) -> bool:
    """Staff, superusers and members of the researcher group see studies, progress and reports."""
    if user is None or not user.is_authenticated or not user.is_active:
        return False
    if user.is_staff or user.is_superuser:
        return True
    return user.groups.filter(name=RESEARCHER_GROUP).exists()


def studies_for_researcher(*, user: AbstractBaseUser) -> QuerySet[Study]:
    """The studies list of a researcher: only the ones they own or share (see annotations/access.py)."""
    from .access import studies_visible  # access builds on user_is_researcher above

    return studies_visible(user=user).annotate(item_count=Count("items", distinct=True)).order_by("-created_at")


def live_assignments_q(prefix: str = "") -> Q:
    """Assignments that hold one of an item's k slots: submitted, or active and not yet expired.

    Assignments of excluded annotators hold no slot, so every item still reaches k usable ratings.
    """
    now = timezone.now()
    return (
        Q(**{f"{prefix}status": Assignment.Status.SUBMITTED})
        | Q(**{f"{prefix}status": Assignment.Status.ACTIVE, f"{prefix}expires_at__gt": now})
    ) & Q(**{f"{prefix}annotator__excluded": False})


def _median(values: list[float]) -> float | None:
    return float(statistics.median(values)) if values else None


def study_progress(*, study: Study) -> dict[str, Any]:
    """Counts a researcher needs to follow a study; plain JSON-serialisable values."""
    k = study.raters_per_item
    items = Item.objects.filter(study=study)
    normal = items.filter(kind=Item.Kind.NORMAL).annotate(
        usable=Count(
            "ratings", filter=Q(ratings__annotator__excluded=False), distinct=True
        )
    )
    annotators = Annotator.objects.filter(study=study)
    ratings = Rating.objects.filter(item__study=study)
    seconds = list(
        ratings.filter(seconds_on_item__isnull=False).values_list("seconds_on_item", flat=True)
    )
    items_normal = normal.count()
    items_complete = normal.filter(usable__gte=k).count()
    return {
        "k": k,
        "status": study.status,
        "items_total": items.count(),
        "items_normal": items_normal,
        "items_checks": items.exclude(kind=Item.Kind.NORMAL).count(),
        "items_complete": items_complete,
        "fraction_complete": (items_complete / items_normal) if items_normal else 0.0,
        "ratings_total": ratings.count(),
        "ratings_usable": ratings.filter(annotator__excluded=False).count(),
        "annotators_total": annotators.count(),
        "annotators_consented": annotators.filter(consented_at__isnull=False).count(),
        "annotators_completed": annotators.filter(completed_at__isnull=False).count(),
        "annotators_excluded": annotators.filter(excluded=True).count(),
        "active_assignments": Assignment.objects.filter(
            item__study=study, status=Assignment.Status.ACTIVE, expires_at__gt=timezone.now()
        ).count(),
        "median_seconds_per_item": _median(seconds),
    }


def study_annotator_rows(*, study: Study) -> list[dict[str, Any]]:
    """One row per annotator for the researcher page (ids, counts, checks, speed, exclusion)."""
    rows = []
    annotators = Annotator.objects.filter(study=study).annotate(n_ratings=Count("ratings")).order_by("id")
    seconds_by_annotator: dict[int, list[float]] = {}
    for annotator_id, seconds in Rating.objects.filter(
        item__study=study, seconds_on_item__isnull=False
    ).values_list("annotator_id", "seconds_on_item"):
        seconds_by_annotator.setdefault(annotator_id, []).append(seconds)
    for annotator in annotators:
        rows.append(
            {
                "annotator": annotator,
                "n_ratings": annotator.n_ratings,
                "median_seconds": _median(seconds_by_annotator.get(annotator.id, [])),
            }
        )
    return rows


def annotator_rating_count(*, annotator: Annotator) -> int:
    return Rating.objects.filter(annotator=annotator).count()


def annotator_own_ratings(*, annotator: Annotator) -> QuerySet[Rating]:
    """An annotator's own work, and nothing of anyone else's."""
    return Rating.objects.filter(annotator=annotator).select_related("item").order_by("created_at")


def annotator_median_seconds(*, annotator: Annotator) -> tuple[int, float | None]:
    seconds = list(
        Rating.objects.filter(annotator=annotator, seconds_on_item__isnull=False).values_list(
            "seconds_on_item", flat=True
        )
    )
    return len(seconds), _median(seconds)


def study_plan(*, study: Study, rho: float = 0.3, power: float = 0.8) -> dict[str, Any]:
    """The planning numbers for a study once a pilot has ratings (shown on the manage page).

    The pilot reliability is the single-rater ICC of the usable ratings on normal items (annotators
    not excluded); Spearman-Brown projects it to the study's k. Seconds per rating are the median
    time on item; pay comes from the study's settings when set.
    """
    from .planning import plan_lines, study_plan_compute
    from .reliability import icc_compute

    rows = list(Rating.objects.filter(item__study=study, item__kind=Item.Kind.NORMAL, annotator__excluded=False)
                .values_list("item_id", "annotator_id", "value", "seconds_on_item"))
    base = {"rho": rho, "power": power, "k": study.raters_per_item}
    if not rows:
        return {**base, "available": False, "reason": "no ratings yet: run a pilot first"}
    icc = icc_compute(units=[r[0] for r in rows], raters=[r[1] for r in rows], values=[float(r[2]) for r in rows])
    if icc.single is None:
        return {**base, "available": False, "reason": f"the pilot's reliability is undefined: {icc.reason}"}
    seconds = [r[3] for r in rows if r[3] is not None and r[3] > 0]
    pay = float(study.pay_per_hour) if study.pay_per_hour is not None else None
    plan = study_plan_compute(
        rho=rho, power=power, raters=study.raters_per_item, reliability=max(min(icc.single, 0.999), -0.999),
        pilot_raters=1, seconds_per_rating=statistics.median(seconds) if seconds else None,
        pay_per_hour=pay if seconds else None,
    )
    return {**base, "available": True, "plan": plan.as_dict(), "lines": plan_lines(plan, currency=study.pay_currency),
            "pilot": {"items": icc.n, "ratings": len(rows), "model": icc.model, "single": icc.single,
                      "ci_low": icc.single_ci_low, "ci_high": icc.single_ci_high}}
