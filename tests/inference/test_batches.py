"""Batch orchestration: counters, stage chaining, idempotency, cancel, retry failed, reaper, bad input.

The orchestration is tested with small stage functions defined here (`va_from_ground_truth`, …) so a
test can make chosen items fail and count calls; they write real rows with the real unique keys.
The end-to-end runs with the project's own stage services live in test_crash_recovery.py.
"""
from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import OperationalError
from django.utils import timezone

from inference.models import (
    Batch,
    BatchChunk,
    Dataset,
    Generation,
    LLMConfig,
    PromptTemplate,
    Sample,
    VAEstimate,
)
from inference.services import batches
from inference.services.batches import (
    BatchInvalid,
    BatchStateError,
    batch_cancel,
    batch_chunk_run,
    batch_chunks_reap,
    batch_queue,
    batch_retry_failed,
    batch_stage_advance,
)
from tests.factories import sample_make, stage_service_use

CALLS: list[tuple[str, list[int]]] = []


def va_from_ground_truth(*, sample_ids: list[int], source: str) -> dict:
    """Upserts VA from the dataset's ground truth; a sample without it fails (as the real source does)."""
    CALLS.append(("va", list(sample_ids)))
    errors = {}
    for sample in Sample.objects.filter(pk__in=sample_ids):
        if sample.gt_valence is None:
            errors[str(sample.pk)] = "sample has no ground-truth valence"
            continue
        VAEstimate.objects.update_or_create(sample=sample, source=source, model_sha256="dataset",
                                            defaults={"valence": sample.gt_valence, "arousal": sample.gt_arousal})
    return {"done": len(sample_ids) - len(errors), "failed": len(errors), "errors": errors}


def generate_echo(*, va_estimate_ids: list[int], config_id: int, prompt_id: int) -> dict:
    CALLS.append(("generate", list(va_estimate_ids)))
    prompt = PromptTemplate.objects.get(pk=prompt_id)
    for va in VAEstimate.objects.filter(pk__in=va_estimate_ids):
        Generation.objects.update_or_create(va_estimate=va, config_id=config_id, prompt=prompt, defaults={
            "task": prompt.task, "text": f"valence {va.valence:.2f}"})
    return {"done": len(va_estimate_ids), "failed": 0, "errors": {}}


def database_gone(**kwargs: object) -> dict:
    raise OperationalError("server closed the connection unexpectedly")


def reply_garbage(**kwargs: object) -> object:
    return ["not", "a", "dict"]


def raise_missing_model(**kwargs: object) -> dict:
    raise RuntimeError("FACECHANNEL_WEIGHTS is not set")


@pytest.fixture(autouse=True)
def stage_functions(monkeypatch) -> None:
    CALLS.clear()
    stage_service_use(monkeypatch, "va", va_from_ground_truth)
    stage_service_use(monkeypatch, "generate", generate_echo)


@pytest.fixture
def dataset(db) -> Dataset:
    dataset = Dataset.objects.create(name="faces", format="manifest", label_set=["happiness", "sadness"])
    for i in range(5):
        sample_make(dataset, f"s{i}", image_sha256=f"{i:064d}", gt=(i / 10, -i / 10), references=[f"ref {i}"])
    return dataset


@pytest.fixture
def llm(db) -> tuple[LLMConfig, PromptTemplate]:
    config = LLMConfig.objects.create(name="lex", backend="lexicon")
    prompt = PromptTemplate.objects.create(task="describe", name="plain", text="V={valence} A={arousal}")
    return config, prompt


def _queue(dataset: Dataset, **kwargs: object) -> Batch:
    options = {"stages": ["va"], "va_source": "dataset", "chunk_size": 2, **kwargs}
    return batch_queue(dataset=dataset, **options)


def test_it_runs_every_chunk_and_counts_each_item_once(dataset, django_capture_on_commit_callbacks) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        batch = _queue(dataset)
    batch.refresh_from_db()
    assert (batch.status, batch.total, batch.done, batch.failed) == ("succeeded", 5, 5, 0)
    assert batch.started_at and batch.finished_at
    assert list(batch.chunks.values_list("status", "done")) == [("done", 2), ("done", 2), ("done", 1)]
    assert VAEstimate.objects.filter(sample__dataset=dataset, source="dataset").count() == 5


def test_it_sends_each_chunk_after_commit_to_its_stage_queue(dataset, django_capture_on_commit_callbacks,
                                                             monkeypatch) -> None:
    sent = []
    from inference.tasks.batch import batch_chunk_run_task
    monkeypatch.setattr(batch_chunk_run_task, "apply_async", lambda args, queue: sent.append((args, queue)))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        batch = _queue(dataset)
        assert sent == []  # nothing leaves before the rows exist for a worker to read
    for callback in callbacks:
        callback()
    assert sent == [([chunk.pk], "va") for chunk in batch.chunks.order_by("index")]


def test_it_chains_the_next_stage_when_the_last_chunk_finishes(dataset, llm, django_capture_on_commit_callbacks) -> None:
    config, prompt = llm
    with django_capture_on_commit_callbacks(execute=True):
        batch = _queue(dataset, stages=["va", "generate"], configs=[config], prompts=[prompt])
    batch.refresh_from_db()
    assert (batch.status, batch.current_stage, batch.total, batch.done) == ("succeeded", "generate", 10, 10)
    assert [stage for stage, _ in CALLS] == ["va"] * 3 + ["generate"] * 3
    assert Generation.objects.filter(config=config, prompt=prompt).count() == 5
    assert set(batch.chunks.filter(stage="generate").values_list("params", flat=True)[0]) == {"config_id", "prompt_id"}


def test_it_advances_a_stage_only_once(dataset, llm) -> None:
    config, prompt = llm
    batch = _queue(dataset, stages=["va", "generate"], configs=[config], prompts=[prompt])
    for chunk in batch.chunks.all():  # run the chunks without the automatic advance
        va_from_ground_truth(sample_ids=chunk.item_ids, source="dataset")
        BatchChunk.objects.filter(pk=chunk.pk).update(status="done", done=len(chunk.item_ids))
    assert batch_stage_advance(batch_id=batch.pk, stage="va") is True
    assert batch_stage_advance(batch_id=batch.pk, stage="va") is False  # the second finisher
    assert batch.chunks.filter(stage="generate").count() == 3
    batch.refresh_from_db()
    assert batch.total == 5 + 5


def test_it_ignores_a_redelivered_chunk_message(dataset) -> None:
    batch = _queue(dataset)
    chunk = batch.chunks.first()
    assert batch_chunk_run(chunk_id=chunk.pk).ran is True
    assert batch_chunk_run(chunk_id=chunk.pk).ran is False
    batch.refresh_from_db()
    chunk.refresh_from_db()
    assert (batch.done, chunk.done, chunk.attempts) == (2, 2, 1)
    assert len(CALLS) == 1


def test_it_does_not_count_a_stale_attempt_twice(dataset) -> None:
    batch = _queue(dataset)
    chunk = batch.chunks.first()
    BatchChunk.objects.filter(pk=chunk.pk).update(status="running", attempts=1,
                                                  started_at=timezone.now() - timedelta(hours=1))
    stale = BatchChunk.objects.get(pk=chunk.pk)
    assert batch_chunks_reap(timeout_s=60)["requeued"] == 1
    assert batch_chunk_run(chunk_id=chunk.pk).ran is True  # the new attempt
    # The slow first worker wakes up and tries to record its result: fenced out by the attempt number.
    assert batches._chunk_finish(chunk=stale, done=2, errors={}) is False
    batch.refresh_from_db()
    assert batch.done == 2


def test_it_cancels_queued_chunks_and_lets_running_ones_finish(dataset) -> None:
    batch = _queue(dataset)
    first, second, third = batch.chunks.order_by("index")
    BatchChunk.objects.filter(pk=first.pk).update(status="running", attempts=1)
    first.refresh_from_db()
    assert batch_cancel(batch_id=batch.pk) == 2
    assert batches._chunk_finish(chunk=first, done=2, errors={}) is True
    assert batch_chunk_run(chunk_id=second.pk).ran is False  # its message arrives after the cancel
    batch.refresh_from_db()
    assert (batch.status, batch.done) == ("cancelled", 2)
    assert batch.cancelled_at is not None
    assert list(batch.chunks.order_by("index").values_list("status", flat=True)) == ["done", "cancelled", "cancelled"]
    assert batch_stage_advance(batch_id=batch.pk, stage="va") is False
    with pytest.raises(BatchStateError):
        batch_cancel(batch_id=batch.pk)


def test_it_retries_only_the_failed_items(dataset, llm, django_capture_on_commit_callbacks) -> None:
    config, prompt = llm
    broken = list(dataset.samples.order_by("id")[:2].values_list("pk", flat=True))
    Sample.objects.filter(pk__in=broken).update(gt_valence=None)
    with django_capture_on_commit_callbacks(execute=True):
        batch = _queue(dataset, stages=["va", "generate"], configs=[config], prompts=[prompt])
    batch.refresh_from_db()
    assert (batch.status, batch.done, batch.failed, batch.total) == ("failed", 3 + 3, 2, 5 + 3)
    assert "2 of 8 item(s) failed" in batch.error
    assert batch.chunks.get(index=0, stage="va").errors == {str(pk): "sample has no ground-truth valence"
                                                            for pk in broken}

    Sample.objects.filter(pk__in=broken).update(gt_valence=0.5)
    CALLS.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert batch_retry_failed(batch_id=batch.pk) == 2
    batch.refresh_from_db()
    assert CALLS[0] == ("va", broken)  # only the failed items, not the whole chunk
    assert [stage for stage, _ in CALLS] == ["va", "generate"]  # and the next stage only for them
    assert (batch.status, batch.done, batch.failed, batch.total, batch.error) == ("succeeded", 10, 0, 10, "")
    assert Generation.objects.filter(prompt=prompt).count() == 5
    with pytest.raises(BatchStateError):
        batch_retry_failed(batch_id=batch.pk)


def test_it_fails_the_chunk_when_the_stage_cannot_run(dataset, monkeypatch, django_capture_on_commit_callbacks) -> None:
    stage_service_use(monkeypatch, "va", raise_missing_model)
    with django_capture_on_commit_callbacks(execute=True):
        batch = _queue(dataset)
    batch.refresh_from_db()
    assert (batch.status, batch.done, batch.failed) == ("failed", 0, 5)
    assert set(batch.chunks.first().errors.values()) == {"RuntimeError: FACECHANNEL_WEIGHTS is not set"}


def test_it_fails_the_chunk_on_a_malformed_stage_reply(dataset, monkeypatch) -> None:
    stage_service_use(monkeypatch, "va", reply_garbage)
    batch = _queue(dataset)
    outcome = batch_chunk_run(chunk_id=batch.chunks.first().pk)
    assert (outcome.done, outcome.failed) == (0, 2)
    assert "not a dict" in next(iter(batch.chunks.first().errors.values()))


def test_it_leaves_the_chunk_to_the_reaper_when_the_database_goes_away(dataset, monkeypatch) -> None:
    stage_service_use(monkeypatch, "va", database_gone)
    batch = _queue(dataset)
    chunk = batch.chunks.first()
    with pytest.raises(OperationalError):
        batch_chunk_run(chunk_id=chunk.pk)
    chunk.refresh_from_db()
    batch.refresh_from_db()
    assert (chunk.status, chunk.failed, chunk.errors, batch.failed) == ("running", 0, {}, 0)  # nothing blamed on items


def test_it_does_nothing_for_an_unknown_chunk_id(db) -> None:
    assert batch_chunk_run(chunk_id=987654).ran is False


def test_it_reaches_every_stage_service_by_a_normal_import() -> None:
    from inference import stages
    from inference.services.llm import generations_run_many
    from inference.services.similarity import similarity_compute
    from inference.services.va import va_extract_samples

    assert list(stages.STAGES) == ["va", "generate", "similarity"] == [s.value for s in Batch.Stage]
    # (this module's autouse fixture swaps the services in STAGES; the registry's own entries are checked)
    registry = [stages.VA, stages.GENERATE, stages.SIMILARITY]
    assert [stage.service for stage in registry] == [va_extract_samples, generations_run_many, similarity_compute]
    assert [stage.queue for stage in registry] == ["va", "llm", "embed"]


def test_it_reaps_lost_messages_and_dead_workers(dataset, django_capture_on_commit_callbacks) -> None:
    batch = _queue(dataset)
    first, second, third = batch.chunks.order_by("index")
    long_ago = timezone.now() - timedelta(hours=1)
    BatchChunk.objects.filter(pk=first.pk).update(status="running", attempts=1, started_at=long_ago)  # killed
    BatchChunk.objects.filter(pk=second.pk).update(queued_at=long_ago)  # message lost with the broker
    with django_capture_on_commit_callbacks(execute=True):
        counts = batch_chunks_reap(timeout_s=60)
    assert (counts["requeued"], counts["resent"]) == (1, 1)
    first.refresh_from_db()
    second.refresh_from_db()
    third.refresh_from_db()
    assert (first.status, first.attempts, second.status, third.status) == ("done", 2, "done", "queued")
    assert batch_chunks_reap(timeout_s=60)["resent"] == 0  # fresh chunks are left alone


def test_it_gives_up_on_a_chunk_that_keeps_killing_workers(dataset) -> None:
    batch = _queue(dataset)
    chunk = batch.chunks.first()
    BatchChunk.objects.filter(pk=chunk.pk).update(status="running", attempts=batches.MAX_CHUNK_ATTEMPTS,
                                                  started_at=timezone.now() - timedelta(hours=1))
    assert batch_chunks_reap(timeout_s=60)["given_up"] == 1
    chunk.refresh_from_db()
    batch.refresh_from_db()
    assert (chunk.status, chunk.failed, batch.failed) == ("failed", 2, 2)
    assert "gave up after 3 attempts" in chunk.errors[str(chunk.item_ids[0])]


def test_it_advances_a_stage_whose_finisher_died(dataset) -> None:
    batch = _queue(dataset)
    batch.chunks.update(status="done")
    assert batch_chunks_reap(timeout_s=60)["advanced"] == 1
    batch.refresh_from_db()
    assert batch.status == "succeeded"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"stages": []}, "at least one stage"),
    ({"stages": ["va", "translate"]}, "unknown stage"),
    ({"stages": ["generate", "va"]}, "must run in the order"),
    ({"stages": ["va", "va"]}, "listed twice"),
    ({"stages": ["va", "similarity"], "embedders": ["word"]}, "consecutive"),
    ({"stages": ["generate"]}, "needs at least one LLM config and one prompt"),
    ({"stages": ["similarity"]}, "needs at least one embedder"),
    ({"stages": ["similarity"], "embedders": ["glove"]}, "unknown embedder"),
    ({"va_source": "webcam"}, "unknown VA source"),
    ({"chunk_size": 0}, "chunk size"),
])
def test_it_rejects_an_invalid_batch(dataset, kwargs, message) -> None:
    with pytest.raises(BatchInvalid, match=message):
        _queue(dataset, **kwargs)
    assert Batch.objects.count() == 0


def test_it_rejects_a_stage_with_nothing_to_do(db, dataset, llm) -> None:
    empty = Dataset.objects.create(name="empty", format="manifest")
    with pytest.raises(BatchInvalid, match="has no samples"):
        _queue(empty)
    config, prompt = llm
    with pytest.raises(BatchInvalid, match="run the va stage first"):
        _queue(dataset, stages=["generate"], configs=[config], prompts=[prompt])
    assert Batch.objects.count() == 0


def test_it_rejects_a_task_argument_that_is_not_a_chunk_id() -> None:
    from inference.tasks.batch import batch_chunk_run_task

    with pytest.raises(TypeError, match="takes a chunk id"):
        batch_chunk_run_task.run("12; DROP TABLE")


# --- run_batch / reap_batches commands ------------------------------------------------------------


@pytest.mark.django_db(transaction=True)  # real commits, so eager chunks run before --wait polls
def test_it_runs_a_batch_from_the_command_line(dataset, llm) -> None:
    out = StringIO()
    call_command("run_batch", "--dataset", "faces", "--stages", "va,generate", "--va-source", "dataset",
                 "--configs", "lex", "--prompts", "plain", "--chunk-size", "4", stdout=out)
    call_command("run_batch", "--dataset", "faces", "--stages", "generate", "--va-source", "dataset",
                 "--configs", "lex", "--prompts", "describe/plain@1", "--wait", "--poll", "0.01", "--verbosity", "0",
                 stdout=out)
    assert "succeeded: 10 done, 0 failed, 10 planned" in out.getvalue()
    # Everything the second batch would do exists: it says so and makes nothing (no batch, no rows).
    assert "nothing to do: all 5 answers for the chosen configs and prompts exist already" in out.getvalue()
    assert Generation.objects.count() == 5 and Batch.objects.count() == 1


@pytest.mark.parametrize(("args", "message"), [
    (["--dataset", "nope", "--stages", "va"], "unknown dataset 'nope'"),
    (["--dataset", "faces", "--stages", ""], "at least one stage"),
    (["--dataset", "faces", "--stages", "generate,va"], "must run in the order"),
    (["--dataset", "faces", "--stages", "generate", "--configs", "gpt9", "--prompts", "plain"], "unknown LLM config"),
    (["--dataset", "faces", "--stages", "generate", "--configs", "lex", "--prompts", "fancy"], "unknown prompt 'fancy'"),
    (["--dataset", "faces", "--stages", "generate", "--configs", "lex", "--prompts", "plain@x"], "version must be"),
    (["--dataset", "faces", "--stages", "similarity", "--embedders", "word,elmo"], "unknown embedder"),
    (["--dataset", "faces", "--stages", "va", "--va-source", "webcam"], "unknown VA source"),
])
def test_it_rejects_bad_command_arguments(dataset, llm, args, message) -> None:
    with pytest.raises(CommandError, match=message):
        call_command("run_batch", *args, stdout=StringIO())
    assert Batch.objects.count() == 0


def test_it_reaps_from_the_command_line(dataset) -> None:
    batch = _queue(dataset)
    batch.chunks.update(queued_at=timezone.now() - timedelta(hours=2))
    out = StringIO()
    call_command("reap_batches", "--timeout", "60", stdout=out)
    assert "3 resent" in out.getvalue()
    with pytest.raises(CommandError, match="--timeout"):
        call_command("reap_batches", "--timeout", "-1")


@pytest.mark.parametrize("timeout", ["nan", "inf", "1e300"])
def test_it_refuses_a_reaper_timeout_that_is_not_a_number_of_seconds(dataset, timeout: str) -> None:
    batch = _queue(dataset)
    with pytest.raises(CommandError, match="--timeout must be from 0 to"):  # was a ValueError/OverflowError
        call_command("reap_batches", "--timeout", timeout)
    assert batch.chunks.filter(status=BatchChunk.Status.QUEUED).count() == batch.chunks.count()
