"""Celery tasks (embed). Thin: take ids, call one service, own retry/failure handling."""
from __future__ import annotations

from celery import shared_task
from django.db import DatabaseError

from inference.embeddings import embedder_family_check
from inference.services.similarity import similarity_compute


@shared_task(
    name="inference.tasks.embed.similarity_compute_task",
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    # A database hiccup is worth retrying; the upsert makes a re-run harmless. Bad arguments and a
    # missing checkpoint (EmbedderUnavailable) are not retried: they fail the same way every time.
    autoretry_for=(DatabaseError,),
    retry_backoff=True,
    max_retries=3,
)
def similarity_compute_task(self, generation_ids: list[int], family: str) -> dict:
    if not isinstance(generation_ids, list) or not all(
        isinstance(gid, int) and not isinstance(gid, bool) for gid in generation_ids
    ):
        raise ValueError(f"generation_ids must be a list of integers, got {generation_ids!r}")
    family = embedder_family_check(family)
    return similarity_compute(generation_ids=generation_ids, family=family)
