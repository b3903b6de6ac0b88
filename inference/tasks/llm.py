"""Celery tasks (llm). Thin: take ids, call one service, own retry/failure handling.

Routed to the `llm` queue (settings.CELERY_TASK_ROUTES). Recommended worker: `--pool threads`, since
these tasks wait on the network, and each chunk task runs its own pool of concurrent calls (see
docs/llm.md). Batches use `inference.tasks.batch.batch_chunk_run_task`, which calls the same service.
"""
from __future__ import annotations

from celery import shared_task
from django.db import OperationalError

from inference.services.llm import generation_run, generations_run_many


def _id_check(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer id, got {value!r}")
    return value


# Only a database outage is retried here: a failing model call is already retried with backoff
# inside the service and then stored as an `error` Generation, which a re-run retries.
@shared_task(name="inference.tasks.llm.generation_run_task", acks_late=True, autoretry_for=(OperationalError,),
             retry_backoff=True, max_retries=5)
def generation_run_task(va_estimate_id: int, config_id: int, prompt_id: int) -> dict:
    generation = generation_run(va_estimate_id=_id_check("va_estimate_id", va_estimate_id),
                                config_id=_id_check("config_id", config_id),
                                prompt_id=_id_check("prompt_id", prompt_id))
    return {"generation_id": generation.pk, "status": generation.status}


@shared_task(name="inference.tasks.llm.generations_run_many_task", acks_late=True,
             autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5)
def generations_run_many_task(va_estimate_ids: list[int], config_id: int, prompt_id: int,
                              concurrency: int | None = None) -> dict:
    if not isinstance(va_estimate_ids, list):
        raise TypeError(f"va_estimate_ids must be a list of ids, got {va_estimate_ids!r}")
    reply = generations_run_many(va_estimate_ids=va_estimate_ids, config_id=_id_check("config_id", config_id),
                                 prompt_id=_id_check("prompt_id", prompt_id), concurrency=concurrency)
    # JSON keys must be strings for the result serializer.
    return {**reply, "errors": {str(k): v for k, v in reply["errors"].items()},
            "skipped": {str(k): v for k, v in reply["skipped"].items()}}
