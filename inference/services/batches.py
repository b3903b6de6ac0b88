"""Batches: queue, run chunk by chunk, chain stages, cancel, retry failed items, reap stuck chunks.

The database row is the source of truth; Celery messages only say "look at chunk N". Every state change
is a conditional `filter(...).update(...)` that must change exactly one row (healthchecks' sendalerts
pattern), so a redelivered message, two workers finishing at once, or the reaper racing a slow worker
each do the work at most once:

  claim     chunk  queued  -> running   (attempts += 1; the attempt number fences the finish)
  finish    chunk  running -> done/failed, only if still on the same attempt; counters move in the
            same transaction, so they count each item exactly once whatever is redelivered
  advance   batch  current_stage S -> next, only from S; the winner plans and queues the next stage
  reap      chunk  running (too long) -> queued; queued (message lost) -> re-sent

What each stage plans and which service runs a chunk of it comes from the stage registry
(`inference.stages`); this module only moves rows. Stage services (va, llm, similarity) are upserts
keyed by natural keys, so re-running a chunk whose worker died half-way overwrites, never duplicates.

A batch runs on workers (each chunk one Celery message to its stage's queue) or inline
(`batch_run_inline`: the same chunks, claimed and finished the same way, in this process).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import InterfaceError, OperationalError, transaction
from django.db.models import F, Q
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import audit_record
from evalplatform.celery import app as celery_app
from inference.models import Batch, BatchChunk, Dataset, LLMConfig, PromptTemplate, Similarity, VAEstimate
from inference.services.llm import MAX_CONCURRENCY
from inference.stages import STAGE_ORDER, STAGES, PlanInput, StagePlan

logger = logging.getLogger(__name__)

# The one task that runs a chunk (inference/tasks/batch.py registers it under this name). Tasks import
# this module, never the reverse, so the message is sent through the app's registry by that name.
CHUNK_TASK = "inference.tasks.batch.batch_chunk_run_task"
ACTIVE = (Batch.Status.QUEUED, Batch.Status.RUNNING)
UNFINISHED_CHUNK = (BatchChunk.Status.QUEUED, BatchChunk.Status.RUNNING)
MAX_CHUNK_SIZE = 1000
# A chunk whose worker dies this many times is given up on (a poison item, e.g. a native crash in a
# model library, must not take workers down forever); its items become failed and can be retried.
MAX_CHUNK_ATTEMPTS = 3
# Test-only chunk parameter: seconds to sleep per item before the stage service runs, so the crash
# tests can kill a worker in the middle of a batch deterministically. Always 0 in real batches.
ITEM_DELAY_PARAM = "item_delay_s"
# Concurrent model calls per generate chunk (network LLM backends); stored in the chunk params.
CONCURRENCY_PARAM = "concurrency"
# Batch-wide chunk params: set on the first stage's chunks, inherited by the stages planned later.
INHERITED_PARAMS = (ITEM_DELAY_PARAM, CONCURRENCY_PARAM)


class BatchInvalid(ValueError):
    """The request cannot become a batch (unknown dataset/config/prompt/embedder, bad stages…)."""


class BatchNothingToDo(BatchInvalid):
    """The first stage has nothing to do (everything is computed already, or its input is missing)."""


class BatchStateError(ValueError):
    """The batch is not in a state that allows this action (cancel a finished batch, …)."""


@dataclass(frozen=True)
class ChunkOutcome:
    chunk_id: int
    ran: bool
    reason: str = ""
    done: int = 0
    failed: int = 0


# --- queue ----------------------------------------------------------------------------------------


def batch_stages_validate(*, stages: list[str]) -> list[str]:
    if not stages:
        raise BatchInvalid("choose at least one stage (va, generate, similarity)")
    unknown = [stage for stage in stages if stage not in STAGE_ORDER]
    if unknown:
        raise BatchInvalid(f"unknown stage(s) {', '.join(map(repr, unknown))} (choose from {', '.join(STAGE_ORDER)})")
    if len(set(stages)) != len(stages):
        raise BatchInvalid(f"a stage is listed twice: {','.join(stages)}")
    positions = [STAGE_ORDER.index(stage) for stage in stages]
    if positions != sorted(positions):
        raise BatchInvalid(f"stages must run in the order {' → '.join(STAGE_ORDER)}, got {' → '.join(stages)}")
    if positions != list(range(positions[0], positions[0] + len(positions))):
        # va→similarity would score old generations that have nothing to do with the new VA estimates.
        raise BatchInvalid(f"stages must be consecutive ({' → '.join(STAGE_ORDER)}), got {' → '.join(stages)}")
    return list(stages)


def batch_queue(
    *,
    dataset: Dataset,
    stages: list[str],
    va_source: str,
    configs: Iterable[LLMConfig] = (),
    prompts: Iterable[PromptTemplate] = (),
    embedders: Iterable[str] = (),
    chunk_size: int = 16,
    created_by: Any = None,
    item_delay_s: float = 0.0,
    concurrency: int | None = None,
    inline: bool = False,
) -> Batch:
    """Create a batch, plan its first stage into chunks and queue them after commit.

    With `inline=True` no message is sent: the caller runs it with `batch_run_inline` (until then the
    chunks wait as queued rows, and the reaper sends them to workers if nobody runs them)."""
    stages = batch_stages_validate(stages=list(stages))
    configs, prompts, embedders = list(configs), list(prompts), list(embedders)
    if va_source not in VAEstimate.Source.values:
        raise BatchInvalid(f"unknown VA source {va_source!r} (choose from {', '.join(VAEstimate.Source.values)})")
    bad_embedders = [name for name in embedders if name not in Similarity.Family.values]
    if bad_embedders:
        raise BatchInvalid(f"unknown embedder(s) {', '.join(map(repr, bad_embedders))} "
                           f"(choose from {', '.join(Similarity.Family.values)})")
    if len(set(embedders)) != len(embedders):
        raise BatchInvalid("an embedder is listed twice")
    if not isinstance(chunk_size, int) or not 1 <= chunk_size <= MAX_CHUNK_SIZE:
        raise BatchInvalid(f"chunk size must be an integer from 1 to {MAX_CHUNK_SIZE}, got {chunk_size!r}")
    if item_delay_s < 0:
        raise BatchInvalid("item delay must be >= 0")
    if concurrency is not None and (isinstance(concurrency, bool) or not isinstance(concurrency, int)
                                    or not 1 <= concurrency <= MAX_CONCURRENCY):
        raise BatchInvalid(f"concurrency must be an integer from 1 to {MAX_CONCURRENCY}, got {concurrency!r}")
    spec = PlanInput(dataset_id=dataset.pk, va_source=va_source, config_ids=[c.pk for c in configs],
                     prompt_ids=[p.pk for p in prompts], embedders=embedders)
    batch_stages_ready(stages=stages, spec=spec)

    with transaction.atomic(), (_running_inline() if inline else nullcontext()):
        batch = Batch.objects.create(
            dataset=dataset, stages=stages, va_source=va_source, embedders=embedders, chunk_size=chunk_size,
            created_by=created_by, current_stage=stages[0],
        )
        batch.configs.set(configs)
        batch.prompts.set(prompts)
        extra = {ITEM_DELAY_PARAM: float(item_delay_s)} if item_delay_s else {}
        if concurrency is not None:
            extra[CONCURRENCY_PARAM] = concurrency
        created = _stage_plan(batch=batch, stage=stages[0], extra_params=extra)
        if not created:
            # Raising rolls the batch back: nothing half-made is left behind. Everything computed already
            # is not an error (a re-run); missing input (no samples, no VA yet) is.
            first = batch.plan[stages[0]]
            raise (BatchNothingToDo if first["reused"] else BatchInvalid)(first["note"])
        audit_record(action=AuditEvent.Action.BATCH_QUEUED, target=batch, actor=created_by,
                     summary=f"queued batch {batch.pk} ({', '.join(stages)}) on dataset {dataset.name}")
    return batch


def batch_stages_ready(*, stages: list[str], spec: PlanInput) -> None:
    """Refuse a batch any of whose stages could only fail (a missing model file, no embedder, …)."""
    for stage in stages:
        try:
            STAGES[stage].ready(spec)
        except (ImproperlyConfigured, ValueError) as exc:
            raise BatchInvalid(f"{stage} stage: {exc}") from exc


def batch_stages_preview(*, stages: list[str], spec: PlanInput) -> list[dict[str, Any]]:
    """What each stage would plan if it started now: {stage, label, items, reused, note}.

    Only the first stage's count is final; later stages are planned when the one before finishes and
    are shown with what they would find today."""
    preview = []
    for stage in stages:
        plan = STAGES[stage].plan(spec)
        preview.append({"stage": stage, "label": Batch.Stage(stage).label, "items": plan.items,
                        "reused": plan.reused, "note": plan.empty_reason,
                        "groups": {g.key: {"items": len(g.item_ids), "reused": g.reused} for g in plan.groups}})
    return preview


def batch_stages_todo(*, stages: list[str], spec: PlanInput) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """The stages from the first one with work to do, and every stage's preview by name.

    Later stages depend on earlier ones, so only a leading run of complete stages (everything reused)
    can be left out; [] when nothing at all is missing. A leading stage that cannot start for lack of
    input (no samples, no VA yet) is kept, so queueing it explains why."""
    previews = {p["stage"]: p for p in batch_stages_preview(stages=stages, spec=spec)}
    start = 0
    while start < len(stages) and not previews[stages[start]]["items"] and previews[stages[start]]["reused"]:
        start += 1
    return stages[start:], previews


# --- planning -------------------------------------------------------------------------------------


def _stage_plan(*, batch: Batch, stage: str, extra_params: dict | None = None) -> list[BatchChunk]:
    """Create chunks for the items of `stage` not already in one of its chunks; queue them on commit.

    Planning only the missing items makes a stage re-plannable: after "retry failed" re-ran some VA
    items, the generate stage gets chunks for exactly the estimates it has not seen yet. What was
    planned, reused, or why nothing was, is recorded in `Batch.plan` for the batch page.
    """
    if extra_params is None:
        extra_params = _inherited_params(batch)
    existing = list(batch.chunks.filter(stage=stage).values_list("key", "item_ids", "index"))
    next_index = max((index for _, _, index in existing), default=-1) + 1
    created: list[BatchChunk] = []
    now = timezone.now()
    plan: StagePlan = STAGES[stage].plan(PlanInput.of(batch))
    for group in plan.groups:
        param_key, params = group.key, group.params
        seen = {item for key, items, _ in existing if key.startswith(f"{stage}:{param_key}:") for item in items}
        todo = [item for item in group.item_ids if item not in seen]
        for start in range(0, len(todo), batch.chunk_size):
            created.append(BatchChunk(
                batch=batch, stage=stage, index=next_index, key=f"{stage}:{param_key}:{next_index}",
                item_ids=todo[start:start + batch.chunk_size], params={**params, **extra_params}, queued_at=now,
            ))
            next_index += 1
    BatchChunk.objects.bulk_create(created)
    planned = sum(len(c.item_ids) for c in created)
    record = dict(Batch.objects.filter(pk=batch.pk).values_list("plan", flat=True).first() or {})
    previous = record.get(stage, {})
    # Reuse is what the first planning found; a re-plan after "retry failed" only adds items.
    record[stage] = previous or {"reused": plan.reused, "groups": {g.key: g.reused for g in plan.groups}}
    record[stage] = {**record[stage], "planned": previous.get("planned", 0) + planned,
                     "note": "" if planned or previous.get("planned") else
                     (plan.empty_reason or "nothing new to plan")}
    batch.plan = record
    Batch.objects.filter(pk=batch.pk).update(plan=record)
    if created:
        Batch.objects.filter(pk=batch.pk).update(total=F("total") + planned)
        _chunks_enqueue(chunks=created)
    return created


def _inherited_params(batch: Batch) -> dict:
    first = batch.chunks.order_by("id").values_list("params", flat=True).first() or {}
    return {key: first[key] for key in INHERITED_PARAMS if key in first}


# Set while `batch_run_inline` drives a batch: its chunks are run here, so no message is sent for them.
_inline: ContextVar[bool] = ContextVar("batch_inline", default=False)


@contextmanager
def _running_inline() -> Iterator[None]:
    token = _inline.set(True)
    try:
        yield
    finally:
        _inline.reset(token)


def _chunks_enqueue(*, chunks: Iterable[BatchChunk]) -> None:
    if _inline.get():
        return
    task = celery_app.tasks[CHUNK_TASK]
    for chunk in chunks:
        # After commit only, so a worker never looks for a chunk row that is not committed yet.
        transaction.on_commit(
            lambda chunk_id=chunk.pk, queue=STAGES[chunk.stage].queue: task.apply_async(args=[chunk_id], queue=queue)
        )


# --- running a chunk ------------------------------------------------------------------------------


def _reply_errors(reply: object, item_ids: list[int]) -> dict[str, str]:
    """The failed items of a stage service reply, checked: a malformed reply fails the whole chunk
    rather than being trusted (nothing counted done that was not)."""
    if not isinstance(reply, dict) or not isinstance(reply.get("errors", {}), dict):
        raise ValueError(f"stage service returned {type(reply).__name__}, not a dict with an 'errors' dict")
    known = {str(item) for item in item_ids}
    errors = {str(item): str(message) for item, message in reply.get("errors", {}).items()}
    skipped = reply.get("skipped") or {}
    if not isinstance(skipped, dict):
        raise ValueError("stage service returned a 'skipped' that is not a dict")
    # An item the service skipped produced no result: count it failed, with the service's reason.
    errors.update({str(item): f"skipped: {reason}" for item, reason in skipped.items()})
    stray = sorted(set(errors) - known)
    if stray:
        raise ValueError(f"stage service reported errors for items not in the chunk: {', '.join(stray[:5])}")
    if not isinstance(reply.get("failed", len(errors)), int) or reply.get("failed", len(errors)) > len(errors):
        raise ValueError(f"stage service reported {reply.get('failed')!r} failed items but "
                         f"{len(errors)} error message(s)")
    return errors


def batch_chunk_run(*, chunk_id: int) -> ChunkOutcome:
    """Claim a queued chunk, run its stage service, record the outcome, advance the stage if last."""
    now = timezone.now()
    claimed = BatchChunk.objects.filter(pk=chunk_id, status=BatchChunk.Status.QUEUED, batch__status__in=ACTIVE).update(
        status=BatchChunk.Status.RUNNING, started_at=now, attempts=F("attempts") + 1
    )
    if claimed != 1:
        # A redelivered or reaped duplicate, a cancelled batch, or a deleted chunk: nothing to do.
        return ChunkOutcome(chunk_id=chunk_id, ran=False, reason="not queued")
    chunk = BatchChunk.objects.select_related("batch").get(pk=chunk_id)
    Batch.objects.filter(pk=chunk.batch_id, status=Batch.Status.QUEUED).update(
        status=Batch.Status.RUNNING, started_at=now
    )
    # A retry re-runs only the items that failed last time.
    item_ids = [int(item) for item in chunk.params.get("retry_ids", chunk.item_ids)]
    delay = float(chunk.params.get(ITEM_DELAY_PARAM, 0) or 0)
    if delay:
        time.sleep(delay * len(item_ids))
    try:
        errors = _reply_errors(STAGES[chunk.stage].run(item_ids, chunk.params), item_ids)
    except (OperationalError, InterfaceError):
        # The database went away: nothing about the items is known, so none is failed. The chunk stays
        # running and the reaper re-queues it after BATCH_CHUNK_TIMEOUT.
        raise
    except Exception as exc:  # noqa: BLE001 - one chunk's failure (missing model, bad reply) must not stop the batch
        logger.exception("batch %s chunk %s (%s) failed", chunk.batch_id, chunk.pk, chunk.key)
        message = f"{type(exc).__name__}: {exc}"
        errors = {str(item): message for item in item_ids}
    failed = len(errors)
    done = len(item_ids) - failed
    if not _chunk_finish(chunk=chunk, done=done, errors=errors):
        return ChunkOutcome(chunk_id=chunk_id, ran=False, reason="superseded by a newer attempt")
    # Outside the finish transaction on purpose: each worker checks after its own commit, so the last
    # of two concurrent finishers always sees the stage complete (and the conditional update lets only
    # one of them advance it).
    batch_stage_advance(batch_id=chunk.batch_id, stage=chunk.stage)
    return ChunkOutcome(chunk_id=chunk_id, ran=True, done=done, failed=failed)


def _chunk_finish(*, chunk: BatchChunk, done: int, errors: dict[str, str]) -> bool:
    with transaction.atomic():
        # Fenced by the attempt number: if the reaper gave this chunk to another worker meanwhile, the
        # slow original must not count its items a second time.
        updated = BatchChunk.objects.filter(
            pk=chunk.pk, status=BatchChunk.Status.RUNNING, attempts=chunk.attempts
        ).update(
            status=BatchChunk.Status.FAILED if errors else BatchChunk.Status.DONE,
            done=F("done") + done, failed=len(errors), errors=errors, finished_at=timezone.now(),
        )
        if updated != 1:
            return False
        Batch.objects.filter(pk=chunk.batch_id).update(done=F("done") + done, failed=F("failed") + len(errors))
    return True


def batch_stage_advance(*, batch_id: int, stage: str) -> bool:
    """Move a batch past `stage` once all its chunks are finished. True if this call advanced it."""
    if BatchChunk.objects.filter(batch_id=batch_id, stage=stage, status__in=UNFINISHED_CHUNK).exists():
        return False
    batch = Batch.objects.get(pk=batch_id)
    if batch.status not in ACTIVE or batch.current_stage != stage:
        return False
    following = batch.stages[batch.stages.index(stage) + 1:]
    with transaction.atomic():
        if following:
            moved = Batch.objects.filter(pk=batch_id, status__in=ACTIVE, current_stage=stage).update(
                current_stage=following[0]
            )
            if moved != 1:
                return False  # another worker advanced it first
            batch.current_stage = following[0]
            if _stage_plan(batch=batch, stage=following[0]):
                return True
        else:
            batch.refresh_from_db(fields=["failed", "total"])
    if following:
        # Nothing to do in the next stage (e.g. every face missing): move straight on past it.
        return batch_stage_advance(batch_id=batch_id, stage=following[0]) or True
    return _batch_finish(batch=batch, stage=stage)


def _batch_finish(*, batch: Batch, stage: str) -> bool:
    failed = batch.failed
    finished = Batch.objects.filter(pk=batch.pk, status__in=ACTIVE, current_stage=stage).update(
        status=Batch.Status.FAILED if failed else Batch.Status.SUCCEEDED,
        finished_at=timezone.now(),
        error=f"{failed} of {batch.total} item(s) failed; see the chunk errors, then retry failed" if failed else "",
    )
    return finished == 1


def batch_run_inline(*, batch_id: int, progress: Callable[[Batch], None] | None = None) -> Batch:
    """Run a batch's queued chunks in this process, stage after stage, until it finishes.

    The same claim/finish/advance as on a worker, so progress, cancel (between chunks), retry and the
    reaper behave identically; stages planned meanwhile are run here too, never sent to a queue. A
    chunk left running by a crash is the reaper's: it is not touched here."""
    with _running_inline():
        while True:
            batch = Batch.objects.get(pk=batch_id)
            if progress is not None:
                progress(batch)
            if batch.status not in ACTIVE:
                return batch
            chunk_id = (BatchChunk.objects.filter(batch_id=batch_id, stage=batch.current_stage,
                                                  status=BatchChunk.Status.QUEUED)
                        .order_by("index").values_list("id", flat=True).first())
            if chunk_id is None:
                # Nothing queued in the current stage: advance (it may be finished), else stop.
                if not batch_stage_advance(batch_id=batch_id, stage=batch.current_stage):
                    return Batch.objects.get(pk=batch_id)
                continue
            batch_chunk_run(chunk_id=chunk_id)


# --- operator actions -----------------------------------------------------------------------------


def batch_cancel(*, batch_id: int, by: Any = None) -> int:
    """Stop a batch: queued chunks never start, running ones finish. Returns chunks cancelled.
    `by` (the user, if any) goes to the audit log."""
    with transaction.atomic():
        now = timezone.now()
        if Batch.objects.filter(pk=batch_id, status__in=ACTIVE).update(
            status=Batch.Status.CANCELLED, cancelled_at=now, finished_at=now
        ) != 1:
            raise BatchStateError("only a queued or running batch can be cancelled")
        cancelled = BatchChunk.objects.filter(batch_id=batch_id, status=BatchChunk.Status.QUEUED).update(
            status=BatchChunk.Status.CANCELLED, finished_at=now
        )
        audit_record(action=AuditEvent.Action.BATCH_CANCELLED, target=Batch(pk=batch_id), actor=by,
                     summary=f"cancelled batch {batch_id} ({cancelled} queued chunk(s) stopped)")
        return cancelled


def batch_retry_failed(*, batch_id: int, by: Any = None) -> int:
    """Re-queue only the failed items of a failed batch; later stages are planned for them as they
    succeed. Returns the number of items re-queued. `by` (the user, if any) goes to the audit log."""
    with transaction.atomic():
        batch = Batch.objects.select_for_update().get(pk=batch_id)
        if batch.status != Batch.Status.FAILED:
            raise BatchStateError("only a failed batch can retry its failed items")
        chunks = list(batch.chunks.select_for_update().filter(status=BatchChunk.Status.FAILED))
        if not chunks:
            raise BatchStateError("this batch has no failed chunks to retry")
        earliest = min((chunk.stage for chunk in chunks), key=STAGE_ORDER.index)
        items = 0
        now = timezone.now()
        for chunk in chunks:
            retry_ids = sorted(int(item) for item in chunk.errors) or list(chunk.item_ids)
            items += len(retry_ids)
            chunk.params = {**chunk.params, "retry_ids": retry_ids}
            chunk.status, chunk.failed, chunk.queued_at = BatchChunk.Status.QUEUED, 0, now
            chunk.started_at = chunk.finished_at = None
            chunk.save(update_fields=["params", "status", "failed", "queued_at", "started_at", "finished_at"])
        Batch.objects.filter(pk=batch_id).update(
            status=Batch.Status.RUNNING, current_stage=earliest, failed=F("failed") - items, error="",
            finished_at=None,
        )
        _chunks_enqueue(chunks=chunks)
        audit_record(action=AuditEvent.Action.BATCH_RETRIED, target=batch, actor=by,
                     summary=f"retried {items} failed item(s) of batch {batch_id}")
    return items


def batch_chunks_reap(*, timeout_s: float | None = None) -> dict[str, int]:
    """Recover what crashes and broker restarts leave behind. Run periodically (Celery beat).

    - running longer than the timeout: the worker died (SIGKILL, OOM, lost node) → queue again, or
      give up after MAX_CHUNK_ATTEMPTS and fail its items (retry failed can still re-run them);
    - queued longer than the timeout: the message was lost (Redis restarted without persistence, or
      the process died between commit and send) → send it again;
    - a stage whose chunks are all finished but was never advanced (died right after the last commit).
    """
    timeout = timedelta(seconds=settings.BATCH_CHUNK_TIMEOUT if timeout_s is None else timeout_s)
    cutoff = timezone.now() - timeout
    counts = {"requeued": 0, "resent": 0, "given_up": 0, "advanced": 0}
    active = BatchChunk.objects.filter(batch__status__in=ACTIVE)
    for chunk in active.filter(status=BatchChunk.Status.RUNNING, started_at__lt=cutoff):
        counts["given_up" if chunk.attempts >= MAX_CHUNK_ATTEMPTS else "requeued"] += _chunk_reap_running(chunk=chunk)
    for chunk in active.filter(status=BatchChunk.Status.QUEUED).filter(Q(queued_at__lt=cutoff) | Q(queued_at=None)):
        with transaction.atomic():
            # Conditional, so two reapers (two beat processes by mistake) send it once.
            if BatchChunk.objects.filter(pk=chunk.pk, status=BatchChunk.Status.QUEUED,
                                         queued_at=chunk.queued_at).update(queued_at=timezone.now()) == 1:
                _chunks_enqueue(chunks=[chunk])
                counts["resent"] += 1
    for batch in Batch.objects.filter(status__in=ACTIVE).exclude(current_stage=""):
        if batch_stage_advance(batch_id=batch.pk, stage=batch.current_stage):
            counts["advanced"] += 1
    if any(counts.values()):
        logger.warning("batch reaper: %s", counts)
    return counts


def _chunk_reap_running(*, chunk: BatchChunk) -> int:
    now = timezone.now()
    stuck = BatchChunk.objects.filter(pk=chunk.pk, status=BatchChunk.Status.RUNNING, attempts=chunk.attempts)
    if chunk.attempts < MAX_CHUNK_ATTEMPTS:
        with transaction.atomic():
            if stuck.update(status=BatchChunk.Status.QUEUED, queued_at=now, started_at=None) != 1:
                return 0
            _chunks_enqueue(chunks=[chunk])
        return 1
    item_ids = [int(item) for item in chunk.params.get("retry_ids", chunk.item_ids)]
    message = f"gave up after {chunk.attempts} attempts: the worker died or timed out each time"
    errors = {str(item): message for item in item_ids}
    with transaction.atomic():
        if stuck.update(status=BatchChunk.Status.FAILED, failed=len(errors), errors=errors, finished_at=now) != 1:
            return 0
        Batch.objects.filter(pk=chunk.batch_id).update(failed=F("failed") + len(errors))
    batch_stage_advance(batch_id=chunk.batch_id, stage=chunk.stage)
    return 1


# --- reads (for the page, the admin and the CLI) --------------------------------------------------


def batch_queued_message(*, batch: Batch) -> str:
    """What the user is told right after queueing, from the committed row (a batch that already ran,
    e.g. with eager Celery, says what it did)."""
    batch.refresh_from_db()
    if batch.status not in ACTIVE:
        return (f"Batch {batch.pk} {batch.get_status_display().lower()}: {batch.done} done, {batch.failed} failed "
                f"of {batch.total} item(s).")
    first = (batch.plan or {}).get(batch.stages[0], {})
    reused = f", {first['reused']} reused from earlier runs" if first.get("reused") else ""
    later = "; later stages are planned when the one before finishes" if len(batch.stages) > 1 else ""
    return (f"Batch {batch.pk} queued: {first.get('planned', batch.total)} item(s) to do in "
            f"{Batch.Stage(batch.stages[0]).label}{reused}{later}.")


def batch_progress(*, batch: Batch) -> dict[str, Any]:
    """Everything the status partial, the JSON endpoint and `run_batch --wait` show."""
    stages = []
    for stage in batch.stages:
        chunks = [chunk for chunk in batch.chunks.all() if chunk.stage == stage]
        total = sum(len(chunk.item_ids) for chunk in chunks)
        plan = (batch.plan or {}).get(stage)
        stages.append({
            "stage": stage,
            "label": Batch.Stage(stage).label,
            "planned": bool(chunks),
            # Planned with nothing to do: say why instead of "not planned yet".
            "considered": plan is not None,
            "reused": (plan or {}).get("reused", 0),
            "note": (plan or {}).get("note", ""),
            "total": total,
            "done": sum(chunk.done for chunk in chunks),
            "failed": sum(chunk.failed for chunk in chunks),
            "chunks": {status: sum(1 for chunk in chunks if chunk.status == status) for status in BatchChunk.Status},
        })
    finished = batch.done + batch.failed
    return {
        "id": batch.pk,
        "status": batch.status,
        "finished": batch.status not in ACTIVE,
        "current_stage": batch.current_stage,
        "total": batch.total,
        "done": batch.done,
        "failed": batch.failed,
        "percent": round(100 * finished / batch.total, 1) if batch.total else 0.0,
        "error": batch.error,
        "stages": stages,
    }
