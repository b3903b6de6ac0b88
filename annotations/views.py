"""Annotator pages (join, consent, rate, done) and the researcher's study pages.

Views check access, validate, call one service and render. Crowd annotators carry no account: the
annotator id lives in the server-side session, whose cookie is a random signed key (unforgeable), and
the session key is cycled on join against fixation.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from .access import study_required
from .assignment import annotator_remaining_count, assignment_next
from .forms import ChoiceForm, ConsentForm, RatingForm, StudyStatusForm
from .models import Annotator, Assignment, Study
from .selectors import (
    annotator_own_ratings,
    annotator_rating_count,
    studies_for_researcher,
    study_annotator_rows,
    study_progress,
    user_is_researcher,
)
from .services.annotators import (
    JoinInvalid,
    annotator_complete,
    annotator_consent,
    annotator_join,
    annotator_join_account,
    crowd_identity_parse,
)
from .services.ratings import (
    AssignmentExpired,
    AssignmentNotFound,
    RatingInvalid,
    SubmitResult,
    assignment_mark_shown,
    rating_submit,
)
from .services.studies import StudyInvalid, study_status_set
from .views_compare import unit_render

AnnotatorView = Callable[..., HttpResponse]
ALREADY_RECORDED = "Your rating for that item was already recorded; a submitted rating is final."


def _session_key(study: Study) -> str:
    return f"annotations.annotator.{study.pk}"


def _message_page(request: HttpRequest, *, title: str, body: str, status: int = 200, **extra: Any) -> HttpResponse:
    return render(request, "annotations/message.html", {"title": title, "body": body, **extra}, status=status)


def annotator_for_request(request: HttpRequest, study: Study) -> Annotator | None:
    """The annotator this browser is in this study: its crowd session first, else its account."""
    annotator_id = request.session.get(_session_key(study))
    if annotator_id is not None:
        annotator = Annotator.objects.filter(pk=annotator_id, study=study).select_related("study").first()
        if annotator is not None:
            return annotator
    if request.user.is_authenticated:
        return (
            Annotator.objects.filter(study=study, platform=Annotator.Platform.ACCOUNT, user=request.user)
            .select_related("study")
            .first()
        )
    return None


def annotator_required(view: AnnotatorView) -> AnnotatorView:
    """Resolve the study and this browser's annotator; someone not in the study is sent to join."""

    @wraps(view)
    def wrapper(request: HttpRequest, slug: str, *args: Any, **kwargs: Any) -> HttpResponse:
        study = get_object_or_404(Study, slug=slug)
        annotator = annotator_for_request(request, study)
        if annotator is None:
            return redirect("annotations:join", slug=study.slug)
        return view(request, study, annotator, *args, **kwargs)

    return wrapper


def researcher_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not user_is_researcher(request.user):
            raise PermissionDenied("researchers only")
        return view(request, *args, **kwargs)

    return wrapper


def session_ended(annotator: Annotator, study: Study) -> bool:
    """Ended by a failed check under the 'end' action (no completion code), not merely excluded."""
    return annotator.excluded and annotator.failed_checks > 0 and study.failed_check_action == "end"


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    open_studies = Study.objects.filter(status=Study.Status.OPEN) if request.user.is_authenticated else []
    return render(
        request, "annotations/home.html",
        {"open_studies": open_studies, "is_researcher": user_is_researcher(request.user)},
    )


# --- Annotator pages ------------------------------------------------------------------------------


@require_GET
def join(request: HttpRequest, slug: str) -> HttpResponse:
    study = get_object_or_404(Study, slug=slug)
    try:
        identity = crowd_identity_parse(request.GET)
        if identity is not None and identity.preview:
            return render(request, "annotations/join.html", {"study": study, "preview": True})
        if identity is not None:
            annotator = annotator_join(
                study=study, platform=identity.platform, external_id=identity.worker_id,
                external_session=identity.session_id, external_study=identity.study_id,
            )
        elif request.user.is_authenticated:
            annotator = annotator_join_account(study=study, user=request.user)
        else:
            login_url = f"{reverse('login')}?{urlencode({'next': request.get_full_path()})}"
            return render(request, "annotations/join.html", {"study": study, "login_url": login_url})
    except JoinInvalid as exc:
        status = 403 if "not accepting" in str(exc) else 400
        return render(request, "annotations/join.html", {"study": study, "error": str(exc)}, status=status)
    if identity is not None and request.session.get(_session_key(study)) != annotator.pk:
        request.session.cycle_key()
        request.session[_session_key(study)] = annotator.pk
    if annotator.consented_at is None:
        return redirect("annotations:consent", slug=study.slug)
    return redirect("annotations:next", slug=study.slug)


@require_http_methods(["GET", "POST"])
@annotator_required
def consent(request: HttpRequest, study: Study, annotator: Annotator) -> HttpResponse:
    if annotator.consented_at is not None:
        return redirect("annotations:next", slug=study.slug)
    form = ConsentForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        annotator_consent(annotator=annotator)
        return redirect("annotations:next", slug=study.slug)
    status = 400 if request.method == "POST" else 200
    return render(request, "annotations/consent.html", {"study": study, "form": form}, status=status)


@require_GET
@annotator_required
def next_item(request: HttpRequest, study: Study, annotator: Annotator) -> HttpResponse:
    if annotator.consented_at is None:
        return redirect("annotations:consent", slug=study.slug)
    if annotator.completed_at is not None:
        return redirect("annotations:done", slug=study.slug)
    if study.status != Study.Status.OPEN:
        return _message_page(request, title="This study is closed",
                             body="It is not accepting ratings any more. Thank you for your interest.", status=403)
    assignment = assignment_next(annotator=annotator)
    if assignment is not None:
        return redirect("annotations:item", slug=study.slug, token=assignment.token)
    if annotator_rating_count(annotator=annotator):
        annotator_complete(annotator=annotator)
        return redirect("annotations:done", slug=study.slug)
    return _message_page(request, title="No items available right now",
                         body="Every item already has enough ratings. Please return the study; thank you.")


def _own_assignment(annotator: Annotator, study: Study, token: Any) -> Assignment:
    # 404 (not 403) for someone else's id too: an id that is not yours is indistinguishable from a forged one.
    assignment = (
        Assignment.objects.select_related("item__generation__va_estimate__sample", "item__sample")
        .filter(token=token, annotator=annotator, item__study=study)
        .first()
    )
    if assignment is None:
        raise Http404("no such assignment")
    return assignment


def _item_context(
    study: Study, annotator: Annotator, assignment: Assignment, form: RatingForm | ChoiceForm | None
) -> dict[str, Any]:
    item = assignment.item
    generation = item.generation
    estimate = generation.va_estimate if generation is not None else None
    sample = estimate.sample if estimate is not None else item.sample  # a comparative unit names its sample
    done = annotator_rating_count(annotator=annotator)
    # Counting the items still open to this annotator is the costliest read of the page and only feeds
    # an "about N" progress bar, so the estimate is cached per annotator for a minute.
    # The random order seed in the key keeps two databases' annotator 7 apart in a shared cache.
    total_estimate = cache.get_or_set(
        f"annotations:total:{annotator.pk}:{annotator.order_seed}",
        lambda: done + 1 + annotator_remaining_count(annotator=annotator), 60,
    )
    total = max(total_estimate, done + 1)
    labels = list(study.scale_labels or [])
    points = [
        {"value": value, "label": labels[i] if i < len(labels) else ""}
        for i, value in enumerate(range(study.scale_min, study.scale_max + 1))
    ]
    return {
        "study": study, "annotator": annotator, "assignment": assignment, "item": item, "form": form,
        "points": points, "selected": form["value"].value() if isinstance(form, RatingForm) else None,
        "done": done, "total": total, "position": done + 1,
        "show_image": study.show_image and sample is not None and bool(sample.image),
        "va": estimate if study.show_va and estimate is not None and estimate.valence is not None else None,
        "references": list(sample.references or []) if study.show_reference and sample is not None else [],
    }


@require_http_methods(["GET", "POST"])
@annotator_required
def item(request: HttpRequest, study: Study, annotator: Annotator, token: Any) -> HttpResponse:
    comparative = study.kind != Study.Kind.LIKERT
    if request.method == "GET":
        assignment = _own_assignment(annotator, study, token)
        if assignment.status != Assignment.Status.ACTIVE:
            return redirect("annotations:next", slug=study.slug)
        assignment_mark_shown(assignment=assignment)
        if comparative:
            return unit_render(request, _item_context(study, annotator, assignment, None))
        context = _item_context(study, annotator, assignment, RatingForm(study=study))
        return render(request, "annotations/item.html", context)

    form = (ChoiceForm if comparative else RatingForm)(request.POST, study=study)
    if form.is_valid():
        try:
            # The service finds the assignment under a row lock and answers a replay itself.
            result = rating_submit(
                annotator=annotator, assignment_token=token, value=form.cleaned_data.get("value"),
                best=form.cleaned_data.get("best"), worst=form.cleaned_data.get("worst"),
                comment=form.cleaned_data["comment"],
            )
        except AssignmentNotFound as exc:
            raise Http404("no such assignment") from exc
        except AssignmentExpired:
            return _message_page(
                request, title="Time ran out for that item",
                body="You kept it longer than the time limit and it went to another annotator, so that rating "
                     "was not recorded. You can continue with the next item.",
                status=409, next_url=reverse("annotations:next", kwargs={"slug": study.slug}),
            )
        except RatingInvalid as exc:
            form.add_error(None if comparative else "value", str(exc))
        else:
            return _after_submit(request, study, result)
    assignment = _own_assignment(annotator, study, token)
    if assignment.status == Assignment.Status.SUBMITTED:
        messages.info(request, ALREADY_RECORDED)
        return redirect("annotations:next", slug=study.slug)
    if comparative:
        return unit_render(request, _item_context(study, annotator, assignment, form), status=400)
    return render(request, "annotations/item.html", _item_context(study, annotator, assignment, form), status=400)


def _after_submit(request: HttpRequest, study: Study, result: SubmitResult) -> HttpResponse:
    if not result.created:
        messages.info(request, ALREADY_RECORDED)
    elif result.session_ended:
        return redirect("annotations:done", slug=study.slug)
    elif result.check_failed and study.failed_check_action == "warn":
        messages.warning(request, "That answer did not match an attention check. Please read each item carefully.")
    return redirect("annotations:next", slug=study.slug)


@require_GET
@annotator_required
def item_image(request: HttpRequest, study: Study, annotator: Annotator, token: Any) -> HttpResponse:
    """The photo of one of your own assignments; no stable public URL reveals which sample an item is."""
    assignment = _own_assignment(annotator, study, token)
    generation = assignment.item.generation
    sample = generation.va_estimate.sample if generation is not None else assignment.item.sample
    if not study.show_image or sample is None or not sample.image:
        raise Http404("no image")
    response = FileResponse(sample.image.open("rb"))
    response["Cache-Control"] = "private, max-age=3600"
    return response


@require_GET
@annotator_required
def done(request: HttpRequest, study: Study, annotator: Annotator) -> HttpResponse:
    if annotator.completed_at is None:
        return redirect("annotations:next", slug=study.slug)
    if session_ended(annotator, study):
        return _message_page(
            request, title="Your session has ended",
            body="An attention check was not answered as instructed, so this study has ended for you. "
                 "Thank you for your time.",
        )
    return render(request, "annotations/done.html", {"study": study, "annotator": annotator,
                                                     "n_ratings": annotator_rating_count(annotator=annotator)})


@require_GET
@annotator_required
def my_ratings(request: HttpRequest, study: Study, annotator: Annotator) -> HttpResponse:
    return render(request, "annotations/my_ratings.html",
                  {"study": study, "ratings": annotator_own_ratings(annotator=annotator)})


# --- Researcher pages -----------------------------------------------------------------------------


@require_GET
@researcher_required
def study_list(request: HttpRequest) -> HttpResponse:
    return render(request, "annotations/study_list.html", {"studies": studies_for_researcher(user=request.user)})


@require_GET
@study_required
def study_manage(request: HttpRequest, study: Study) -> HttpResponse:
    join_url = request.build_absolute_uri(reverse("annotations:join", kwargs={"slug": study.slug}))
    return render(request, "annotations/study_manage.html", {
        "study": study, "progress": study_progress(study=study), "rows": study_annotator_rows(study=study),
        "prolific_url": f"{join_url}?PROLIFIC_PID={{{{%PROLIFIC_PID%}}}}&STUDY_ID={{{{%STUDY_ID%}}}}"
                        f"&SESSION_ID={{{{%SESSION_ID%}}}}",
        "mturk_url": f"{join_url}?workerId=…&assignmentId=…&hitId=…",
        "status_form": StudyStatusForm(initial={"status": study.status}),
    })


@require_POST
@study_required
def study_status(request: HttpRequest, study: Study) -> HttpResponse:
    form = StudyStatusForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Unknown status.")
    else:
        try:
            study_status_set(study=study, status=form.cleaned_data["status"])
            messages.success(request, f"Study is now {study.get_status_display().lower()}.")
        except StudyInvalid as exc:
            messages.error(request, str(exc))
    return redirect("annotations:study_manage", slug=study.slug)
