"""Celery tasks (batch). Thin: take ids, call one service, own retry/failure handling.

`batch_chunk_run_task` is sent to the queue of its chunk's stage (the stage registry's `queue`: va, llm,
embed) by the batch service with `apply_async(queue=...)`; the reaper runs on `default` from the beat
schedule in settings.
"""
from __future__ import annotations

from celery import shared_task
from django.db import OperationalError

from inference.services.batches import CHUNK_TASK, batch_chunk_run, batch_chunks_reap


# acks_late + reject_on_worker_lost: a message is acknowledged only after the chunk's outcome is
# committed, and one whose worker was killed goes back to the broker. The claim in the service makes
# the redelivery harmless; the reaper covers what the broker itself loses.
@shared_task(
    name=CHUNK_TASK, acks_late=True, reject_on_worker_lost=True,
    autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5,
)
def batch_chunk_run_task(chunk_id: int) -> dict:
    # Only a database outage before the claim is retried here (the chunk is still queued then); once
    # claimed, a crash leaves it running and the reaper re-queues it after BATCH_CHUNK_TIMEOUT.
    if isinstance(chunk_id, bool) or not isinstance(chunk_id, int):
        raise TypeError(f"batch_chunk_run_task takes a chunk id (int), got {chunk_id!r}")
    outcome = batch_chunk_run(chunk_id=chunk_id)
    return {"chunk_id": outcome.chunk_id, "ran": outcome.ran, "reason": outcome.reason,
            "done": outcome.done, "failed": outcome.failed}


@shared_task(name="inference.tasks.batch.batch_chunks_reap", acks_late=True, ignore_result=True)
def batch_chunks_reap_task() -> dict[str, int]:
    return batch_chunks_reap()
