"""Celery tasks (llm). Thin: take ids, call one service, own retry/failure handling.

Routed to the `llm` queue (settings.CELERY_TASK_ROUTES). Batches reach the LLM stage through
`batch_chunk_run_task`; this task is for ad-hoc runs outside a batch (re-generate a few items).
Recommended worker: `celery -A evalplatform worker -Q llm --pool threads --concurrency 4` — each
message already runs its calls on a thread pool, and the calls wait on the network, not the CPU.
"""
from __future__ import annotations

from celery import shared_task
from django.db import OperationalError

from inference.services.llm import generations_run_many


# acks_late: a killed worker's message is redelivered; the (VA, config, prompt) upsert plus the cache
# make the second run call the model only for items the first did not finish.
@shared_task(
    name="inference.tasks.llm.generations_run_task", acks_late=True, reject_on_worker_lost=True,
    autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5,
)
def generations_run_task(va_estimate_ids: list[int], config_id: int, prompt_id: int) -> dict:
    report = generations_run_many(va_estimate_ids=va_estimate_ids, config_id=config_id, prompt_id=prompt_id)
    # JSON turns int keys into strings anyway; say so explicitly for whoever reads the result.
    return {**report, "errors": {str(k): v for k, v in report["errors"].items()},
            "skipped": {str(k): v for k, v in report["skipped"].items()}}
