"""Celery tasks (va queue, routed by the `inference.tasks.va.*` name prefix). Thin: take sample ids,
call one service, own retry/failure handling.

The models (face detector, FaceChannel, expression classifier, word norms) are module-level lazy
caches in their own modules, so each worker process loads them on its first chunk and keeps them.
"""
from __future__ import annotations

from celery import shared_task
from django.db import OperationalError

from inference.services.va import va_extract_samples


# acks_late + reject_on_worker_lost: a chunk whose worker dies mid-way goes back to the broker; the
# upsert on (sample, source, model_sha256) makes running it again harmless. Only a database outage is
# retried: a bad argument or a missing model fails the same way every time.
@shared_task(
    name="inference.tasks.va.va_extract_chunk", acks_late=True, reject_on_worker_lost=True,
    autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5,
)
def va_extract_chunk(sample_ids: list[int], source: str) -> dict:
    report = va_extract_samples(sample_ids=sample_ids, source=source)
    # JSON result: keys must be strings.
    return {**report, "errors": {str(k): v for k, v in report["errors"].items()}}
