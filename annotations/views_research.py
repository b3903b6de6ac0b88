"""Researcher views: report list/build/detail/downloads, CSV exports, and the Bearer-token JSON API.

Who may see a study is decided in `annotations/access.py` (owner, collaborators, superusers; everyone
else 404). The HTML routes use the session (login redirect when anonymous); the API routes take
`Authorization: Bearer <API token key>` only: no or unknown token 401, a study the token's user may not
see 404.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from annotations.access import study_get_visible
from annotations.exports import (
    PAYMENT_COLUMNS,
    RATING_COLUMNS,
    csv_render,
    report_body,
    study_item_rows,
    study_payment_rows,
    study_ratings_rows,
)
from annotations.exports_choices import CHOICE_COLUMNS, SCORE_COLUMNS, study_choice_rows, study_score_rows
from annotations.models import Report, Study
from annotations.participants import (
    annotator_pseudonym,
    participant_erase,
    participant_export,
    participant_find,
)
from annotations.services.tokens import api_token_authenticate
from annotations.tasks import study_report_build_task
from audit.models import AuditEvent
from audit.services import audit_record

# The reports serve stored HTML: forbid scripts and remote loads outright, whatever it contains.
REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"


def download_audited(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Record each successful download of a study's data in the audit log (who, which file, from where).
    Access was checked by the view: only a 200 attachment is recorded."""

    @wraps(view)
    def wrapper(request: HttpRequest, slug: str, **kwargs: Any) -> HttpResponse:
        response = view(request, slug, **kwargs)
        disposition = response.get("Content-Disposition", "")
        if response.status_code == 200 and disposition.startswith("attachment"):
            filename = disposition.partition("filename=")[2].strip('"')
            study = Study.objects.get(slug=slug)
            audit_record(action=AuditEvent.Action.EXPORT_DOWNLOADED, target=study, request=request,
                         summary=f"downloaded {filename}")
        return response

    return wrapper


def _attachment(body: str, content_type: str, filename: str) -> HttpResponse:
    response = HttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@login_required
@require_GET
def report_list(request: HttpRequest, slug: str) -> HttpResponse:
    study = study_get_visible(user=request.user, slug=slug)
    reports = study.reports.select_related("created_by").order_by("-version")
    return render(request, "annotations/report_list.html", {"study": study, "reports": reports})


@login_required
@require_POST
def report_build(request: HttpRequest, slug: str) -> HttpResponse:
    study = study_get_visible(user=request.user, slug=slug)
    # After commit, so a worker never looks for a study row this request has not committed.
    study_report_build_task.delay_on_commit(study.pk, request.user.pk)
    messages.success(request, "Report build queued: the new version appears in this list when it is done.")
    return redirect("research:report_list", slug=study.slug)


@login_required
@require_GET
def report_detail(request: HttpRequest, slug: str, version: int) -> HttpResponse:
    study = study_get_visible(user=request.user, slug=slug)
    report = get_object_or_404(Report, study=study, version=version)
    if not report.html:
        raise Http404("this version was built without HTML; download its JSON or CSV")
    response = HttpResponse(report.html)
    response["Content-Security-Policy"] = REPORT_CSP
    return response


@login_required
@require_GET
@download_audited
def report_download(request: HttpRequest, slug: str, version: int, fmt: str) -> HttpResponse:
    study = study_get_visible(user=request.user, slug=slug)
    report = get_object_or_404(Report, study=study, version=version)
    body = report_body(results=report.results, html=report.html, fmt=fmt)
    if body is None:
        raise Http404(f"no {fmt} download for this report")
    content_type = {"json": "application/json", "csv": "text/csv", "html": "text/html"}[fmt]
    return _attachment(body, content_type, f"{study.slug}-report-v{report.version}.{fmt}")


def _export(rows: list[dict[str, Any]], columns: list[str], *, study: Study, name: str, fmt: str) -> HttpResponse:
    """One export as CSV (the project's hardened writer; a header row even with no rows) or JSON."""
    if fmt == "json":
        body = json.dumps({"study": study.slug, "columns": columns, "rows": rows}, indent=1, default=str)
        return _attachment(body, "application/json", f"{study.slug}-{name}.json")
    if fmt != "csv":
        raise Http404(f"no {fmt} export")
    return _attachment(csv_render(rows, columns), "text/csv", f"{study.slug}-{name}.csv")


@login_required
@require_GET
@download_audited
def export_ratings(request: HttpRequest, slug: str, fmt: str = "csv") -> HttpResponse:
    study = study_get_visible(user=request.user, slug=slug)
    return _export(study_ratings_rows(study=study), RATING_COLUMNS, study=study, name="ratings", fmt=fmt)


@login_required
@require_GET
@download_audited
def export_items(request: HttpRequest, slug: str, fmt: str = "csv") -> HttpResponse:
    study = study_get_visible(user=request.user, slug=slug)
    rows, columns = study_item_rows(study=study)
    return _export(rows, columns, study=study, name="items", fmt=fmt)


@login_required
@require_GET
@download_audited
def export_payment(request: HttpRequest, slug: str) -> HttpResponse:
    """The explicit "for payment" export: the only download with raw platform ids."""
    study = study_get_visible(user=request.user, slug=slug)
    return _export(study_payment_rows(study=study), PAYMENT_COLUMNS, study=study, name="payment", fmt="csv")


def _participant_or_message(request: HttpRequest, study: Study) -> Any:
    annotator = participant_find(study=study, participant=request.POST.get("participant", ""))
    if annotator is None:
        messages.error(request, "No participant of this study has that platform id or pseudonym.")
    return annotator


@login_required
@require_POST
@download_audited
def participant_export_view(request: HttpRequest, slug: str) -> HttpResponse:
    """Data-subject access request: everything stored about one participant, as JSON."""
    study = study_get_visible(user=request.user, slug=slug)
    annotator = _participant_or_message(request, study)
    if annotator is None:
        return redirect("annotations:study_manage", slug=study.slug)
    body = json.dumps(participant_export(annotator=annotator), indent=1, default=str)
    return _attachment(body, "application/json", f"{study.slug}-participant-{annotator_pseudonym(annotator=annotator)}.json")


@login_required
@require_POST
def participant_erase_view(request: HttpRequest, slug: str) -> HttpResponse:
    """Erasure request: the identity goes, the ratings stay under the pseudonym."""
    study = study_get_visible(user=request.user, slug=slug)
    annotator = _participant_or_message(request, study)
    if annotator is not None:
        participant_erase(annotator=annotator)
        messages.success(request, f"Erased the identity of participant {annotator.pseudonym}; their ratings are "
                                  "kept under that pseudonym.")
    return redirect("annotations:study_manage", slug=study.slug)


@login_required
@require_GET
@download_audited
def export_choices(request: HttpRequest, slug: str) -> HttpResponse:
    """Best–worst / pairwise raw choices, long format: one row per description shown in a submitted unit."""
    study = study_get_visible(user=request.user, slug=slug)
    body = csv_render(study_choice_rows(study=study), CHOICE_COLUMNS)
    return _attachment(body, "text/csv", f"{study.slug}-choices.csv")


@login_required
@require_GET
@download_audited
def export_scores(request: HttpRequest, slug: str) -> HttpResponse:
    """Per description: counting and Bradley–Terry scores with CIs (annotators not excluded)."""
    study = study_get_visible(user=request.user, slug=slug)
    body = csv_render(study_score_rows(study=study), SCORE_COLUMNS)
    return _attachment(body, "text/csv", f"{study.slug}-scores.csv")


# --- token API ----------------------------------------------------------------------------------

def _api_error(status: int, message: str) -> JsonResponse:
    response = JsonResponse({"error": message}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="affect-eval research API"'
    return response


def token_required(view: Callable[..., JsonResponse]) -> Callable[..., JsonResponse]:
    """Resolve the Bearer token to a user and the slug to a study the user may read."""

    @wraps(view)
    def wrapper(request: HttpRequest, slug: str, **kwargs: Any) -> JsonResponse:
        if request.method != "GET":
            return _api_error(405, "GET only")
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            return _api_error(401, "send Authorization: Bearer <token>")
        token = api_token_authenticate(key=key)
        if token is None:
            return _api_error(401, "unknown, expired or revoked token")
        try:
            study = study_get_visible(user=token.user, slug=slug)
        except Http404:
            return _api_error(404, f"no study {slug!r}")
        audit_record(action=AuditEvent.Action.API_USED, target=study, actor=token.user, request=request,
                     summary=f"API {request.path.removeprefix(f'/research/api/studies/{slug}/')} "
                             f"with token {token.prefix}…")
        return view(request, study, **kwargs)

    return wrapper


@token_required
def api_ratings(request: HttpRequest, study: Study) -> JsonResponse:
    return JsonResponse({"study": study.slug, "columns": RATING_COLUMNS, "ratings": study_ratings_rows(study=study)})


@token_required
def api_items(request: HttpRequest, study: Study) -> JsonResponse:
    rows, columns = study_item_rows(study=study)
    return JsonResponse({"study": study.slug, "columns": columns, "items": rows})


@token_required
def api_choices(request: HttpRequest, study: Study) -> JsonResponse:
    """Best–worst / pairwise raw choices (the choices.csv rows); an empty list for a Likert study."""
    return JsonResponse({"study": study.slug, "kind": study.kind, "columns": CHOICE_COLUMNS,
                         "choices": study_choice_rows(study=study)})


@token_required
def api_scores(request: HttpRequest, study: Study) -> JsonResponse:
    """Per description: counting and Bradley–Terry scores with CIs (the scores.csv rows)."""
    return JsonResponse({"study": study.slug, "kind": study.kind, "columns": SCORE_COLUMNS,
                         "scores": study_score_rows(study=study)})


@token_required
def api_report(request: HttpRequest, study: Study, version: int | None = None) -> JsonResponse:
    reports = study.reports.order_by("-version")
    report = reports.filter(version=version).first() if version is not None else reports.first()
    if report is None:
        return _api_error(404, "no such report" if version is not None else "no report built yet")
    return JsonResponse({"study": study.slug, "version": report.version, "created_at": report.created_at,
                         "params": report.params, "results": report.results})
