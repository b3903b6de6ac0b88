"""Reads of the annotations app (HackSoft style: writes live in `services/`, reads here).

`study_progress` and `user_is_researcher` are reused by the research/report views.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Count, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from .models import RESEARCHER_GROUP, Annotator, Assignment, Item, Rating, Study
from .participants import annotator_pseudonym

MTURK_SUBMIT = "https://www.mturk.com"


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
                "pseudonym": annotator_pseudonym(annotator=annotator, study=study),
                "n_ratings": annotator.n_ratings,
                "median_seconds": _median(seconds_by_annotator.get(annotator.id, [])),
            }
        )
    return rows


def annotator_rating_count(*, annotator: Annotator) -> int:
    return Rating.objects.filter(annotator=annotator).count()


def annotator_rating_count_of_row() -> Coalesce:
    """annotator_rating_count as an expression on a queryset of one annotator's rows (their `annotator_id`), so a
    page reads it with the row it needs anyway instead of in a query of its own."""
    ratings = Rating.objects.filter(annotator_id=OuterRef("annotator_id")).order_by().values("annotator_id")
    return Coalesce(Subquery(ratings.annotate(n=Count("id")).values("n")), 0)


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
    if study.kind != Study.Kind.LIKERT:
        return {**base, "available": False, "reason": "the pilot-based plan uses Likert ratings; for best–worst and "
                "pairwise studies see the judgments needed per description in docs/annotation.md"}
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


def study_has_free_slot(*, study: Study) -> bool:
    """Whether some normal item still has fewer than k live assignments (a newcomer would get work)."""
    return (
        Item.objects.filter(study=study, kind=Item.Kind.NORMAL)
        .annotate(live=Count("assignments", filter=live_assignments_q("assignments__")))
        .filter(live__lt=study.raters_per_item)
        .exists()
    )


def annotator_normal_rating_count(*, annotator: Annotator) -> int:
    return Rating.objects.filter(annotator=annotator, item__kind=Item.Kind.NORMAL).count()


def annotator_budget_left(*, annotator: Annotator) -> int | None:
    """Normal items this participant may still rate (None: no budget). Checks come on top of the budget."""
    budget = annotator.study.items_per_participant
    if budget is None:
        return None
    return max(0, budget - annotator_normal_rating_count(annotator=annotator))


@dataclass(frozen=True)
class Completion:
    """What the completion page shows: the code (None: no code) and where the platform wants them back."""

    code: str | None
    redirect_url: str = ""
    mturk_action: str = ""  # MTurk external-submit form target
    mturk_assignment_id: str = ""
    message: str = ""


def annotator_completion(*, annotator: Annotator) -> Completion:
    """The one rule for what a participant gets at the end, by outcome and platform."""
    study = annotator.study
    if annotator.outcome == Annotator.Outcome.ENDED or (
        not annotator.outcome and annotator.excluded and annotator.failed_checks > 0
        and study.failed_check_action == Study.FailedCheckAction.END
    ):
        return Completion(code=None, message="An attention check was not answered as instructed, so this study "
                                             "has ended for you. Thank you for your time.")
    code: str | None = study.completion_code
    message = ""
    if annotator.outcome == Annotator.Outcome.PARTIAL:
        if study.early_finish == Study.EarlyFinish.PARTIAL_CODE:
            code = study.partial_completion_code
            message = "You finished before the end; this partial-completion code records the items you rated."
        elif study.early_finish == Study.EarlyFinish.NO_CODE:
            return Completion(code=None, message="You finished before the end. As stated on the consent page, "
                                                 "finishing early gives no completion code. Thank you for your time.")
    elif annotator.outcome == Annotator.Outcome.CLOSED:
        message = "The study closed while you were taking part; your ratings are recorded."
    if annotator.platform == Annotator.Platform.PROLIFIC and study.completion_url_template:
        url = study.completion_url_template.replace("{code}", quote(code, safe=""))
        return Completion(code=code, redirect_url=url, message=message)
    if annotator.platform == Annotator.Platform.MTURK and annotator.external_session:
        return Completion(code=code, mturk_action=f"{annotator.submit_to or MTURK_SUBMIT}/mturk/externalSubmit",
                          mturk_assignment_id=annotator.external_session, message=message)
    return Completion(code=code, message=message)


def study_reward(*, study: Study) -> Decimal | None:
    """Reward per participant: expected minutes / 60 × pay per hour (None when either is not set)."""
    if study.expected_minutes is None or study.pay_per_hour is None:
        return None
    return (Decimal(study.expected_minutes) * study.pay_per_hour / 60).quantize(Decimal("0.01"))


def study_preview_items(*, study: Study) -> list[Item]:
    """What the researcher's preview walks through: one participant's worth of items (the budget, or
    every item), then the checks."""
    normal = Item.objects.filter(study=study, kind=Item.Kind.NORMAL).select_related(
        "generation__va_estimate__sample").order_by("id")
    if study.items_per_participant is not None:
        normal = normal[: study.items_per_participant]
    return [*normal, *Item.objects.filter(study=study).exclude(kind=Item.Kind.NORMAL).order_by("id")]


def study_item_progress(*, study: Study, lacking_only: bool = False) -> list[dict[str, Any]]:
    """Per normal item: usable ratings (from non-excluded raters) against k, and how many are in hand now."""
    now = timezone.now()
    items = (
        Item.objects.filter(study=study, kind=Item.Kind.NORMAL)
        .annotate(
            usable=Count("ratings", filter=Q(ratings__annotator__excluded=False), distinct=True),
            held=Count("assignments", filter=Q(assignments__status=Assignment.Status.ACTIVE,
                                               assignments__expires_at__gt=now), distinct=True),
        )
        .order_by("id")
    )
    if lacking_only:
        items = items.filter(usable__lt=study.raters_per_item)
    return [{"item": item, "usable": item.usable, "held": item.held, "missing": max(0, study.raters_per_item -
                                                                                     item.usable)}
            for item in items]


def study_median_seconds_per_participant(*, study: Study) -> float | None:
    """Median of each participant's total time on items (finished participants only)."""
    totals: dict[int, float] = {}
    for annotator_id, seconds in Rating.objects.filter(
        item__study=study, seconds_on_item__isnull=False, annotator__completed_at__isnull=False
    ).values_list("annotator_id", "seconds_on_item"):
        totals[annotator_id] = totals.get(annotator_id, 0.0) + seconds
    return _median(list(totals.values()))


def study_cost(*, study: Study) -> dict[str, Any]:
    """Reward per participant, what the participants paid so far cost, and what finishing would cost.

    Paid so far: participants who finished with the full completion code. To finish: the usable ratings
    still missing, divided by one participant's budget (every item when there is none), rounded up.
    """
    reward = study_reward(study=study)
    paid = Annotator.objects.filter(
        study=study, completed_at__isnull=False,
        outcome__in=[Annotator.Outcome.COMPLETE, Annotator.Outcome.CLOSED],
    ).count()
    missing = sum(row["missing"] for row in study_item_progress(study=study))
    per_participant = study.items_per_participant or Item.objects.filter(
        study=study, kind=Item.Kind.NORMAL).count() or 1
    needed = -(-missing // per_participant)
    return {
        "reward": reward, "currency": study.pay_currency, "participants_paid": paid,
        "cost_so_far": reward * paid if reward is not None else None,
        "ratings_missing": missing, "participants_needed": needed,
        "cost_to_finish": reward * needed if reward is not None else None,
    }
