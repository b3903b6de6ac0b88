"""Dataset import on a worker (large datasets, or an import queued from the web)."""
from __future__ import annotations

from celery import shared_task

from inference.services.imports import dataset_import


@shared_task(name="inference.tasks.imports.dataset_import_task", acks_late=True, reject_on_worker_lost=True)
def dataset_import_task(path: str, name: str, fmt: str, label_set: str | None = None) -> dict:
    # Re-running is safe (the import is idempotent), so a redelivered message does no harm.
    report = dataset_import(path=path, name=name, fmt=fmt, label_set=label_set)
    return {"created": report.created, "updated": report.updated, "unchanged": report.unchanged,
            "errors": [str(e) for e in report.errors]}
