"""What the stage commands (extract_va, generate, compute_similarity, run_batch) share: create the Batch,
then run it here (`--inline`), follow it until it ends (`--wait`, or Celery eager), or leave it to the
workers; one tqdm bar per stage either way."""
from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from inference.models import Batch, Dataset, LLMConfig, PromptTemplate
from inference.services.batches import (
    BatchInvalid,
    BatchNothingToDo,
    batch_progress,
    batch_queue,
    batch_run_inline,
)
from inference.stages import STAGES

MAX_POLL_S = 3600.0


def batch_arguments_add(parser: CommandParser, *, chunk_size: int, unit: str) -> None:
    parser.add_argument("--chunk-size", type=int, default=chunk_size,
                        help=f"{unit.capitalize()}s per chunk (one Celery message, one unit of retry). "
                             f"Default {chunk_size}.")
    parser.add_argument("--inline", "--sync", dest="inline", action="store_true",
                        help="Run the batch's chunks in this process instead of on the Celery workers.")
    parser.add_argument("--wait", action="store_true",
                        help="Show progress until the batch finishes (the workers run it).")
    parser.add_argument("--poll", type=float, default=1.0, help="Seconds between progress checks (--wait).")


class Bars:
    """One tqdm bar per planned stage, updated from `batch_progress`."""

    def __init__(self, *, quiet: bool) -> None:
        self.quiet = quiet
        self.bars: dict[str, tqdm] = {}

    def update(self, batch: Batch) -> dict[str, Any]:
        progress = batch_progress(batch=batch)
        for stage in progress["stages"]:
            if not stage["planned"]:
                continue
            bar = self.bars.get(stage["stage"])
            if bar is None:
                bar = self.bars[stage["stage"]] = tqdm(total=stage["total"], desc=stage["stage"], unit="item",
                                                       disable=self.quiet, position=len(self.bars))
            bar.total = stage["total"]  # grows when retried items feed a later stage
            bar.n = stage["done"] + stage["failed"]
            bar.set_postfix(failed=stage["failed"])
            bar.refresh()
        return progress

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


def batch_start(command: BaseCommand, *, dataset: Dataset, stages: list[str], va_source: str,
                configs: Iterable[LLMConfig] = (), prompts: Iterable[PromptTemplate] = (),
                embedders: Iterable[str] = (), options: dict[str, Any], concurrency: int | None = None) -> Batch | None:
    """Queue the batch and, as asked, run it here or follow it. None when there was nothing to do (the
    reason is written out); CommandError for a request that cannot become a batch."""
    chunk_size, wait, poll = options["chunk_size"], options["wait"], options["poll"]
    # Eager Celery means there are no workers: run the chunks here rather than inside commit callbacks.
    inline = options["inline"] or settings.CELERY_TASK_ALWAYS_EAGER
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise CommandError("--chunk-size must be at least 1")
    if not 0 < poll <= MAX_POLL_S:  # also NaN and inf, which time.sleep refuses mid-wait
        raise CommandError(f"--poll must be > 0 and at most {MAX_POLL_S} seconds, not {poll}")
    try:
        batch = batch_queue(dataset=dataset, stages=stages, va_source=va_source, configs=configs, prompts=prompts,
                            embedders=embedders, chunk_size=chunk_size, concurrency=concurrency, inline=inline)
    except BatchNothingToDo as exc:
        command.stdout.write(f"nothing to do: {exc}")
        return None
    except BatchInvalid as exc:
        raise CommandError(str(exc)) from exc
    bars = Bars(quiet=options.get("verbosity", 1) < 1)
    try:
        if inline:
            return batch_run_inline(batch_id=batch.pk, progress=bars.update)
        if wait:
            return _follow(command, batch, bars, poll)
    finally:
        bars.close()
    batch.refresh_from_db()
    if batch.status in (Batch.Status.QUEUED, Batch.Status.RUNNING) and not settings.CELERY_TASK_ALWAYS_EAGER:
        queue = STAGES[batch.current_stage].queue
        command.stdout.write(f"queued batch {batch.pk} ({' → '.join(batch.stages)} over {dataset.name}): "
                             f"{batch.chunks.count()} chunk(s) ({batch.total} items) on the {queue!r} queue; "
                             f"follow it on /pipeline/batches/{batch.pk}/")
    return batch


def _follow(command: BaseCommand, batch: Batch, bars: Bars, poll: float) -> Batch:
    try:
        while True:
            batch.refresh_from_db()
            if bars.update(batch)["finished"]:
                return batch
            time.sleep(poll)
    except KeyboardInterrupt:
        command.stderr.write(f"stopped watching; batch {batch.pk} keeps running (cancel it from its page)")
        raise


def batch_errors_write(command: BaseCommand, batch: Batch, *, item: str, limit: int = 20) -> None:
    """The first `limit` failed items with their error, on stderr."""
    errors = [(key, message) for chunk in batch.chunks.order_by("id") for key, message in chunk.errors.items()]
    for key, message in errors[:limit]:
        command.stderr.write(f"{item} {key}: {message}")
    if len(errors) > limit:
        command.stderr.write(f"... and {len(errors) - limit} more error(s)")


def batch_finished(batch: Batch) -> bool:
    return batch.status not in (Batch.Status.QUEUED, Batch.Status.RUNNING)
