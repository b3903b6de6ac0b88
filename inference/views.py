from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from inference.models import Batch
from inference.services.batches import BatchStateError, batch_cancel, batch_progress, batch_retry_failed


def healthz(request: HttpRequest) -> JsonResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"ok": True})


def staff_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Anonymous → login page (302); logged in but not staff → 403, since logging in again won't help."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not request.user.is_staff:
            raise PermissionDenied("staff only")
        return view(request, *args, **kwargs)

    return wrapper


ERRORS_SHOWN = 200


def _batch_context(batch: Batch) -> dict:
    errors = [(chunk.key, item, message) for chunk in batch.chunks.all() for item, message in chunk.errors.items()]
    return {"batch": batch, "progress": batch_progress(batch=batch), "errors": errors[:ERRORS_SHOWN],
            "errors_hidden": max(0, len(errors) - ERRORS_SHOWN),
            "can_retry": batch.status == Batch.Status.FAILED and any(
                chunk.status == chunk.Status.FAILED for chunk in batch.chunks.all())}


def _batch_get(pk: int) -> Batch:
    return get_object_or_404(
        Batch.objects.select_related("dataset", "created_by").prefetch_related("chunks", "configs", "prompts"), pk=pk
    )


@require_GET
@staff_required
def batch_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return render(request, "inference/batch_detail.html", _batch_context(_batch_get(pk)))


@require_GET
@staff_required
def batch_status(request: HttpRequest, pk: int) -> HttpResponse:
    """Polled every 2 s by the batch page (HTML partial); `?format=json` for scripts."""
    batch = _batch_get(pk)
    if request.GET.get("format") == "json":
        return JsonResponse(batch_progress(batch=batch))
    return render(request, "inference/_batch_status.html", _batch_context(batch))


def batch_can_act(*, user: object, batch: Batch) -> bool:
    """Cancel/retry: only who queued the batch, or a superuser (other staff may watch, not act)."""
    return bool(getattr(user, "is_superuser", False)) or (
        batch.created_by_id is not None and batch.created_by_id == getattr(user, "pk", None)
    )


def _batch_action(request: HttpRequest, pk: int, action: Callable[..., int], verb: str,
                  success: Callable[[int], str]) -> HttpResponse:
    batch = get_object_or_404(Batch, pk=pk)
    if not batch_can_act(user=request.user, batch=batch):
        raise Http404("no such batch")  # as for studies: no hint that someone else's batch exists
    try:
        count = action(batch_id=batch.pk, by=request.user)
    except BatchStateError as exc:
        messages.error(request, f"Batch {batch.pk} was not {verb}: {exc}.")
    else:
        messages.success(request, f"Batch {batch.pk} {verb}: {success(count)}")
    return redirect("inference:batch_detail", pk=batch.pk)


@require_POST
@staff_required
def batch_cancel_view(request: HttpRequest, pk: int) -> HttpResponse:
    return _batch_action(request, pk, batch_cancel, "cancelled",
                         lambda n: f"{n} queued chunk(s) will not run; running chunks finish.")


@require_POST
@staff_required
def batch_retry_view(request: HttpRequest, pk: int) -> HttpResponse:
    return _batch_action(request, pk, batch_retry_failed, "retried", lambda n: f"{n} failed item(s) queued again.")
