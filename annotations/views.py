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

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from evalplatform.middleware import policy_header

from .access import study_required, study_visible
from .assignment import annotator_remaining_count, assignment_next
from .forms import ChoiceForm, ConsentForm, RatingForm, StudyForm, StudyStatusForm
from .models import PROLIFIC_COMPLETION_URL, Annotator, Assignment, Item, Study
from .selectors import (
    Completion,
    annotator_budget_left,
    annotator_completion,
    annotator_own_ratings,
    annotator_rating_count,
    annotator_rating_count_of_row,
    studies_for_researcher,
    study_annotator_rows,
    study_cost,
    study_item_progress,
    study_median_seconds_per_participant,
    study_preview_items,
    study_progress,
    study_reward,
    user_is_researcher,
)
from .services.annotators import (
    MTURK_SUBMIT_HOSTS,
    JoinInvalid,
    StudyUnavailable,
    annotator_complete,
    annotator_consent,
    annotator_finish_early,
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
    choice_parse,
    rating_submit,
)
from .services.studies import (
    DEFAULT_CONSENT,
    StudyInvalid,
    study_create,
    study_duplicate,
    study_status_set,
    study_update,
)
from .views_compare import unit_render

AnnotatorView = Callable[..., HttpResponse]
PREVIEW_SEED = 0  # the preview shows a unit's descriptions in one fixed shuffled order
ALREADY_RECORDED = "Your rating for that item was already recorded; a submitted rating is final."


SESSION_PREFIX = "annotations.annotator."


def _session_key(study: Study) -> str:
    return f"{SESSION_PREFIX}{study.pk}"


def _message_page(request: HttpRequest, *, title: str, body: str, status: int = 200, **extra: Any) -> HttpResponse:
    return render(request, "annotations/message.html", {"title": title, "body": body, **extra}, status=status)


def annotator_for_request(request: HttpRequest, study: Study) -> Annotator | None:
    """The annotator this browser is in this study: its crowd session first, else its account."""
    annotator_id = request.session.get(_session_key(study))
    if annotator_id is not None:
        # An erased participant is forgotten: their old session no longer reaches their rows.
        annotator = Annotator.objects.filter(
            pk=annotator_id, study=study, identity_erased_at__isnull=True).select_related("study").first()
        if annotator is not None:
            return annotator
    if request.user.is_authenticated:
        return (
            Annotator.objects.filter(study=study, platform=Annotator.Platform.ACCOUNT, user=request.user)
            .select_related("study")
            .first()
        )
    return None


def _session_annotator(request: HttpRequest, slug: str) -> Annotator | None:
    """This browser's crowd annotator in the study `slug`, read with its study in one query.

    The session is keyed by study id, which is not known before the study is read; so every annotator
    id the session holds is looked up at once, restricted to this slug, and the match must be the one
    stored under its own study's key. Same rules as annotator_for_request + _participant_study: no
    draft study, no erased participant.
    """
    ids = [value for key, value in request.session.items()
           if key.startswith(SESSION_PREFIX) and isinstance(value, int) and not isinstance(value, bool)]
    if not ids:
        return None
    candidates = (Annotator.objects.select_related("study")
                  .filter(pk__in=ids, study__slug=slug, identity_erased_at__isnull=True)
                  .exclude(study__status=Study.Status.DRAFT)
                  .order_by())  # at most a few rows: no ORDER BY to compile or run on every request
    for annotator in candidates:
        if request.session.get(_session_key(annotator.study)) == annotator.pk:
            return annotator
    return None


def _participant_study(slug: str) -> Study:
    # A draft is not public yet: its join and rating pages do not exist (not even its name shows).
    return get_object_or_404(Study.objects.exclude(status=Study.Status.DRAFT), slug=slug)


def annotator_required(view: AnnotatorView) -> AnnotatorView:
    """Resolve the study and this browser's annotator; someone not in the study is sent to join."""

    @wraps(view)
    def wrapper(request: HttpRequest, slug: str, *args: Any, **kwargs: Any) -> HttpResponse:
        # The hot path (a crowd participant rating): study and annotator in one query.
        annotator = _session_annotator(request, slug)
        if annotator is not None:
            return view(request, annotator.study, annotator, *args, **kwargs)
        study = _participant_study(slug)
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


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    is_researcher = user_is_researcher(request.user)
    # A researcher's click must not enrol them as a participant: they get their studies' previews instead.
    open_studies = (
        Study.objects.filter(status=Study.Status.OPEN)
        if request.user.is_authenticated and not is_researcher else []
    )
    own = studies_for_researcher(user=request.user).exclude(status=Study.Status.CLOSED) if is_researcher else []
    return render(
        request, "annotations/home.html",
        {"open_studies": open_studies, "own_studies": own, "is_researcher": is_researcher},
    )


# --- Annotator pages ------------------------------------------------------------------------------


UNAVAILABLE_TITLES = {
    "full": "This study is full", "closed": "This study is closed", "paused": "This study is paused",
}


def _unavailable_page(request: HttpRequest, study: Study, exc: StudyUnavailable) -> HttpResponse:
    return render(request, "annotations/unavailable.html",
                  {"study": study, "title": UNAVAILABLE_TITLES[exc.reason], "reason": exc.reason}, status=403)


def _policy_with(**directives: list[str]) -> str:
    return policy_header({**settings.CONTENT_SECURITY_POLICY, **directives})


def _frameable_by_mturk(response: HttpResponse) -> HttpResponse:
    """Let MTurk's own pages (and only them) frame this response (ExternalQuestion HITs)."""
    response.xframe_options_exempt = True
    response["Content-Security-Policy"] = _policy_with(**{"frame-ancestors": ["'self'", *MTURK_SUBMIT_HOSTS]})
    return response


@require_GET
def join(request: HttpRequest, slug: str) -> HttpResponse:
    study = _participant_study(slug)
    try:
        identity = crowd_identity_parse(request.GET)
        if identity is not None and identity.platform == Annotator.Platform.MTURK and (
            identity.preview or request.headers.get("Sec-Fetch-Dest") == "iframe"
        ):
            # MTurk shows the task in an iframe on its own site, where browsers withhold our (SameSite)
            # session cookie: the frame only offers to open the task in a tab of its own, where it works.
            page = render(request, "annotations/join.html", {
                "study": study, "mturk_preview": identity.preview, "open_in_tab": request.get_full_path()})
            return _frameable_by_mturk(page)
        if identity is not None:
            annotator = annotator_join(
                study=study, platform=identity.platform, external_id=identity.worker_id,
                external_session=identity.session_id, external_study=identity.study_id,
                submit_to=identity.submit_to,
            )
        elif request.user.is_authenticated and study_visible(user=request.user, study=study):
            return redirect("annotations:preview", slug=study.slug)  # never enrol the study's own researchers
        elif request.user.is_authenticated:
            annotator = annotator_join_account(study=study, user=request.user)
        else:
            login_url = f"{reverse('login')}?{urlencode({'next': request.get_full_path()})}"
            return render(request, "annotations/join.html", {"study": study, "login_url": login_url})
    except StudyUnavailable as exc:
        return _unavailable_page(request, study, exc)
    except JoinInvalid as exc:
        return render(request, "annotations/join.html", {"study": study, "error": str(exc)}, status=400)
    if identity is not None and request.session.get(_session_key(study)) != annotator.pk:
        request.session.cycle_key()
        request.session[_session_key(study)] = annotator.pk
    if annotator.consented_at is None:
        return redirect("annotations:consent", slug=study.slug)
    return redirect("annotations:next", slug=study.slug)


def _consent_context(study: Study) -> dict[str, Any]:
    return {"study": study, "consent_text": study.consent_text or DEFAULT_CONSENT,
            "reward": study_reward(study=study)}


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
    return render(request, "annotations/consent.html", {**_consent_context(study), "form": form}, status=status)


@require_GET
@annotator_required
def next_item(request: HttpRequest, study: Study, annotator: Annotator) -> HttpResponse:
    if annotator.consented_at is None:
        return redirect("annotations:consent", slug=study.slug)
    if annotator.completed_at is not None:
        return redirect("annotations:done", slug=study.slug)
    return _to_next_item(request, study, annotator)


def _to_next_item(request: HttpRequest, study: Study, annotator: Annotator) -> HttpResponse:
    """Claim the annotator's next item and send them to its page (or to the end of their session)."""
    assignment = assignment_next(annotator=annotator)
    if assignment is not None:
        return redirect("annotations:item", slug=study.slug, token=assignment.token)
    rated = annotator_rating_count(annotator=annotator)
    if annotator_budget_left(annotator=annotator) == 0:
        annotator_complete(annotator=annotator, outcome=Annotator.Outcome.COMPLETE)
    elif rated and study.status == Study.Status.CLOSED:
        annotator_complete(annotator=annotator, outcome=Annotator.Outcome.CLOSED)
    elif rated:
        annotator_complete(annotator=annotator, outcome=Annotator.Outcome.COMPLETE)  # nothing left for them
    elif study.status == Study.Status.CLOSED:
        return _unavailable_page(request, study, StudyUnavailable("closed", ""))
    else:
        return _unavailable_page(request, study, StudyUnavailable("full", ""))
    return redirect("annotations:done", slug=study.slug)


def _own_assignment(annotator: Annotator, study: Study, token: Any, *, with_done: bool = False) -> Assignment:
    # 404 (not 403) for someone else's id too: an id that is not yours is indistinguishable from a forged one.
    assignments = (
        Assignment.objects.select_related("item__generation__va_estimate__sample", "item__sample")
        .filter(token=token, annotator=annotator, item__study=study)
    )
    if with_done:
        # The page's "item N" count rides along with the assignment: one query fewer per page.
        assignments = assignments.annotate(done=annotator_rating_count_of_row())
    # The token is unique: no ORDER BY to compile or run.
    assignment = next(iter(assignments.order_by()[:1]), None)
    if assignment is None:
        raise Http404("no such assignment")
    return assignment


def _item_context(
    study: Study, annotator: Annotator, assignment: Assignment, form: RatingForm | ChoiceForm | None
) -> dict[str, Any]:
    item = assignment.item
    done = getattr(assignment, "done", None)
    if done is None:
        done = annotator_rating_count(annotator=annotator)
    if study.items_per_participant is not None:  # with a budget the length of the session is known
        total_estimate = study.items_per_participant + study.items.exclude(kind=Item.Kind.NORMAL).count()
    else:
        # Counting the items still open to this annotator is the costliest read of the page and only feeds
        # an "about N" progress bar, so the estimate is cached per annotator for a minute.
        # The random order seed in the key keeps two databases' annotator 7 apart in a shared cache.
        total_estimate = cache.get_or_set(
            f"annotations:total:{annotator.pk}:{annotator.order_seed}",
            lambda: done + 1 + annotator_remaining_count(annotator=annotator), 60,
        )
    total = max(total_estimate, done + 1)
    image_url = reverse("annotations:item_image", kwargs={"slug": study.slug, "token": assignment.token})
    return {**_item_page(study, item, form, done=done, total=total, image_url=image_url),
            "annotator": annotator, "assignment": assignment,
            "finish_url": reverse("annotations:finish", kwargs={"slug": study.slug})}


def _item_page(study: Study, item: Any, form: RatingForm | ChoiceForm | None, *, done: int, total: int, image_url: str) -> dict[str, Any]:
    """What the rating page shows, shared by participants and the researcher's preview."""
    generation = item.generation
    estimate = generation.va_estimate if generation is not None else None
    sample = estimate.sample if estimate is not None else item.sample  # a comparative unit names its sample
    labels = list(study.scale_labels or [])
    points = [
        {"value": value, "label": labels[i] if i < len(labels) else ""}
        for i, value in enumerate(range(study.scale_min, study.scale_max + 1))
    ]
    return {
        "study": study, "item": item, "form": form, "points": points,
        "selected": form["value"].value() if isinstance(form, RatingForm) else None,
        "done": done, "total": total, "position": done + 1,
        "show_image": study.show_image and sample is not None and bool(sample.image), "image_url": image_url,
        "va": estimate if study.show_va and estimate is not None and estimate.valence is not None else None,
        "references": list(sample.references or []) if study.show_reference and sample is not None else [],
    }


@require_http_methods(["GET", "POST"])
@annotator_required
def item(request: HttpRequest, study: Study, annotator: Annotator, token: Any) -> HttpResponse:
    comparative = study.kind != Study.Kind.LIKERT
    if request.method == "GET":
        assignment = _own_assignment(annotator, study, token, with_done=True)
        if assignment.status != Assignment.Status.ACTIVE:
            return redirect("annotations:next", slug=study.slug)
        assignment_mark_shown(assignment=assignment)
        if comparative:
            return unit_render(request, _item_context(study, annotator, assignment, None), seed=annotator.order_seed)
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
            return _after_submit(request, study, annotator, result)
    assignment = _own_assignment(annotator, study, token, with_done=True)
    if assignment.status == Assignment.Status.SUBMITTED:
        messages.info(request, ALREADY_RECORDED)
        return redirect("annotations:next", slug=study.slug)
    if comparative:
        return unit_render(request, _item_context(study, annotator, assignment, form), seed=annotator.order_seed,
                           status=400)
    return render(request, "annotations/item.html", _item_context(study, annotator, assignment, form), status=400)


def _after_submit(request: HttpRequest, study: Study, annotator: Annotator, result: SubmitResult) -> HttpResponse:
    if not result.created:
        messages.info(request, ALREADY_RECORDED)
    elif result.session_ended:
        return redirect("annotations:done", slug=study.slug)
    elif result.check_failed and study.failed_check_action == "warn":
        messages.warning(request, "That answer did not match an attention check. Please read each item carefully.")
    # Straight to the next item's page: two requests per item (submit, page) instead of a detour
    # through the assignment redirect.
    return _to_next_item(request, study, annotator)


@require_GET
@annotator_required
def item_image(request: HttpRequest, study: Study, annotator: Annotator, token: Any) -> HttpResponse:
    """The photo of one of your own assignments; no stable public URL reveals which sample an item is."""
    return _sample_image(study, _own_assignment(annotator, study, token).item)


def _sample_image(study: Study, item: Item) -> HttpResponse:
    """The photo behind an item, when the study shows photos; 404 otherwise (also for a missing file)."""
    generation = item.generation
    sample = generation.va_estimate.sample if generation is not None else item.sample
    if not study.show_image or sample is None or not sample.image:
        raise Http404("no image")
    try:
        handle = sample.image.open("rb")
    except FileNotFoundError as exc:
        raise Http404("no image") from exc
    response = FileResponse(handle)
    response["Cache-Control"] = "private, max-age=3600"
    return response


@require_POST
@annotator_required
def finish(request: HttpRequest, study: Study, annotator: Annotator) -> HttpResponse:
    """'Finish now' (a POST, so no link or prefetch can end a session)."""
    if annotator.consented_at is not None and annotator.completed_at is None:
        annotator_finish_early(annotator=annotator)
    return redirect("annotations:done", slug=study.slug)


@require_GET
@annotator_required
def done(request: HttpRequest, study: Study, annotator: Annotator) -> HttpResponse:
    if annotator.completed_at is None:
        return redirect("annotations:next", slug=study.slug)
    completion = annotator_completion(annotator=annotator)
    response = render(request, "annotations/done.html", {
        "study": study, "annotator": annotator, "completion": completion,
        "n_ratings": annotator_rating_count(annotator=annotator),
    })
    if completion.mturk_action:
        # The external-submit form posts to MTurk; the site-wide policy allows forms to this site only.
        origin = completion.mturk_action.split("/mturk/")[0]
        response["Content-Security-Policy"] = _policy_with(**{"form-action": ["'self'", origin]})
    return response


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
    lacking = request.GET.get("items") == "lacking"
    return render(request, "annotations/study_manage.html", {
        "study": study, "progress": study_progress(study=study), "rows": study_annotator_rows(study=study),
        "items": study_item_progress(study=study, lacking_only=lacking), "lacking": lacking,
        "cost": study_cost(study=study),
        "median_per_participant": study_median_seconds_per_participant(study=study),
        "completion_url": study.completion_url_template.replace("{code}", study.completion_code),
        "prolific_url": f"{join_url}?PROLIFIC_PID={{{{%PROLIFIC_PID%}}}}&STUDY_ID={{{{%STUDY_ID%}}}}"
                        f"&SESSION_ID={{{{%SESSION_ID%}}}}",
        "mturk_url": join_url,
        "collaborators": study.collaborators.order_by("username"),
    })


@require_POST
@study_required
def study_status(request: HttpRequest, study: Study) -> HttpResponse:
    form = StudyStatusForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Unknown status.")
    else:
        try:
            study_status_set(study=study, status=form.cleaned_data["status"], by=request.user)
            messages.success(request, f"Study is now {study.get_status_display().lower()}.")
        except StudyInvalid as exc:
            messages.error(request, str(exc))
    return redirect("annotations:study_manage", slug=study.slug)


# --- Preview: the participant's pages for the study's researchers; nothing is enrolled or stored ----------


def _preview_item(study: Study, number: int) -> Item:
    items = study_preview_items(study=study)
    if not 1 <= number <= len(items):
        raise Http404("no such preview item")
    return items[number - 1]


@require_http_methods(["GET", "POST"])
@study_required
def preview(request: HttpRequest, study: Study) -> HttpResponse:
    form = ConsentForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        return redirect("annotations:preview_item", slug=study.slug, number=1)
    return render(request, "annotations/consent.html",
                  {**_consent_context(study), "form": form, "preview": True},
                  status=400 if request.method == "POST" else 200)


@require_http_methods(["GET", "POST"])
@study_required
def preview_item(request: HttpRequest, study: Study, number: int) -> HttpResponse:
    """Item `number` of what a participant would see. A rating is validated like a real one, then dropped."""
    item = _preview_item(study, number)
    comparative = study.kind != Study.Kind.LIKERT
    form = (ChoiceForm if comparative else RatingForm)(request.POST if request.method == "POST" else None, study=study)
    valid = request.method == "POST" and form.is_valid()
    if valid and comparative:
        try:  # checked like a real choice, then dropped
            choice_parse(study=study, item=item, best=form.cleaned_data["best"], worst=form.cleaned_data["worst"],
                         seed=PREVIEW_SEED)
        except RatingInvalid as exc:
            form.add_error(None, str(exc))
            valid = False
    if valid:
        if number >= len(study_preview_items(study=study)):
            return redirect("annotations:preview_done", slug=study.slug)
        return redirect("annotations:preview_item", slug=study.slug, number=number + 1)
    total = len(study_preview_items(study=study))
    image_url = reverse("annotations:preview_image", kwargs={"slug": study.slug, "number": number})
    context = {**_item_page(study, item, form, done=number - 1, total=total, image_url=image_url),
               "preview": True, "finish_url": reverse("annotations:preview_done", kwargs={"slug": study.slug})}
    status = 400 if request.method == "POST" else 200
    if comparative:
        return unit_render(request, context, seed=PREVIEW_SEED, status=status)
    return render(request, "annotations/item.html", context, status=status)


@require_GET
@study_required
def preview_image(request: HttpRequest, study: Study, number: int) -> HttpResponse:
    return _sample_image(study, _preview_item(study, number))


@require_http_methods(["GET", "POST"])
@study_required
def preview_done(request: HttpRequest, study: Study) -> HttpResponse:
    completion = Completion(
        code=study.completion_code,
        redirect_url=study.completion_url_template.replace("{code}", study.completion_code),
    )
    return render(request, "annotations/done.html", {
        "study": study, "completion": completion, "preview": True,
        "n_ratings": len(study_preview_items(study=study)),
    })


# --- Study pages: create, edit while draft, duplicate ---------------------------------------------------


def _study_form_page(request: HttpRequest, form: StudyForm, *, study: Study | None, status: int = 200) -> HttpResponse:
    return render(request, "annotations/study_form.html", {"form": form, "study": study}, status=status)


@require_http_methods(["GET", "POST"])
@researcher_required
def study_create_view(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        initial = {"consent_text": DEFAULT_CONSENT, "completion_code": Study._meta.get_field("completion_code").default(),
                   "partial_completion_code": Study._meta.get_field("partial_completion_code").default(),
                   "completion_url_template": PROLIFIC_COMPLETION_URL, "early_finish": Study.EarlyFinish.PARTIAL_CODE}
        return _study_form_page(request, StudyForm(owner=request.user, initial=initial), study=None)
    form = StudyForm(request.POST, owner=request.user)
    if form.is_valid():
        try:
            study = study_create(owner=request.user, **form.study_kwargs())
        except StudyInvalid as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Study created as a draft with {study.items.count()} items. Preview it, "
                                      "then open it.")
            return redirect("annotations:study_manage", slug=study.slug)
    return _study_form_page(request, form, study=None, status=400)


@require_http_methods(["GET", "POST"])
@study_required
def study_edit(request: HttpRequest, study: Study) -> HttpResponse:
    if study.status != Study.Status.DRAFT:
        messages.error(request, "Only a draft can be edited (participants may have seen this one); "
                                "duplicate it to make a changed copy.")
        return redirect("annotations:study_manage", slug=study.slug)
    owner = study.owner or request.user
    if request.method == "GET":
        return _study_form_page(request, StudyForm(owner=owner, initial=StudyForm.initial_for(study)), study=study)
    form = StudyForm(request.POST, owner=owner)
    if form.is_valid():
        try:
            kwargs = form.study_kwargs()
            kwargs["raters_per_item"] = kwargs.pop("k")
            study_update(study=study, **kwargs)
        except StudyInvalid as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, "Study saved.")
            return redirect("annotations:study_manage", slug=study.slug)
    return _study_form_page(request, form, study=study, status=400)


@require_POST
@study_required
def study_duplicate_view(request: HttpRequest, study: Study) -> HttpResponse:
    copy = study_duplicate(study=study, owner=request.user)
    messages.success(request, f"Copied to a new draft, “{copy.name}”: edit it, preview it, then open it.")
    return redirect("annotations:study_edit", slug=copy.slug)
