"""Crash recovery over real Redis, real PostgreSQL and real worker processes, with the project's own stage
services: VA copied from the dataset's ground truth (cheap, deterministic), then the lexicon baseline
"LLM" (nearest emotion words of the Warriner norms), chained across the va and llm queues.

The batches use the test-only chunk parameter `item_delay_s` (see docs/batches.md) so each chunk takes
long enough to be killed in the middle of deterministically.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from django.db.models import Count, Sum

from inference.models import (
    Batch,
    BatchChunk,
    Dataset,
    Generation,
    LLMConfig,
    PromptTemplate,
    Sample,
    Similarity,
    VAEstimate,
)
from inference.services.batches import batch_queue
from tests.conftest import broker_pools_reset, start_worker, stop_worker

SAMPLES = 24
CHUNK_TIMEOUT_S = 3  # the workers' BATCH_CHUNK_TIMEOUT: a chunk takes ~0.5 s, so only dead ones are reaped


def _dataset() -> Dataset:
    dataset = Dataset.objects.create(name="crash", format="manifest", label_set=["happiness", "sadness"])
    Sample.objects.bulk_create([
        Sample(dataset=dataset, external_id=f"s{i}", image=f"samples/{i}.png", image_sha256=f"{i:064d}", width=64,
               height=64, gt_valence=round(-0.9 + i * 0.075, 3), gt_arousal=round(0.8 - i * 0.07, 3),
               references=[f"a person who looks {'sad' if i < SAMPLES // 2 else 'happy'}"])
        for i in range(SAMPLES)
    ])
    return dataset


def _queue(item_delay_s: float, stages: list[str] | None = None, embedders: tuple[str, ...] = ()) -> Batch:
    config = LLMConfig.objects.create(name="lexicon", backend="lexicon")
    prompt = PromptTemplate.objects.create(task="describe", name="plain",
                                           text="Valence {valence}, arousal {arousal}. Describe the person.")
    return batch_queue(dataset=_dataset(), stages=stages or ["va", "generate"], va_source="dataset",
                       configs=[config], prompts=[prompt], embedders=embedders, chunk_size=2,
                       item_delay_s=item_delay_s)


def _wait_for(condition: Callable[[], bool], *, timeout: float, every: Callable[[], None] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if every:
            every()
        time.sleep(0.5)
    raise AssertionError("timed out waiting; chunks: " + repr(list(
        BatchChunk.objects.values_list("key", "status", "attempts"))))


def _assert_every_result_exactly_once(batch: Batch, stages: int = 2) -> None:
    batch.refresh_from_db()
    expected = stages * SAMPLES
    assert (batch.status, batch.total, batch.done, batch.failed) == ("succeeded", expected, expected, 0)
    assert set(batch.chunks.values_list("status", flat=True)) == {"done"}
    assert batch.chunks.aggregate(total=Sum("done"))["total"] == expected  # no chunk counted twice
    per_sample = VAEstimate.objects.filter(source="dataset").values("sample").annotate(n=Count("id"))
    assert sorted(row["n"] for row in per_sample) == [1] * SAMPLES
    assert all(va.valence == va.sample.gt_valence for va in VAEstimate.objects.select_related("sample"))
    assert Generation.objects.filter(status="ok").count() == SAMPLES
    assert Generation.objects.values("va_estimate").distinct().count() == SAMPLES
    assert all(text.startswith("The person looks") for text in Generation.objects.values_list("text", flat=True))


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_it_runs_all_three_real_stages_eagerly(settings) -> None:
    """The real stage services behind the orchestration, without a worker: the baseline for the crash tests."""
    batch = _queue(item_delay_s=0, stages=["va", "generate", "similarity"], embedders=("word",))
    _assert_every_result_exactly_once(batch, stages=3)
    assert list(batch.chunks.values_list("stage", flat=True).distinct().order_by("stage")) == [
        "generate", "similarity", "va"]
    assert Similarity.objects.filter(embedder_family="word").count() == SAMPLES  # one reference each
    assert all(-1 <= cosine <= 1 for cosine in Similarity.objects.values_list("cosine", flat=True))


@pytest.fixture
def short_chunk_timeout(monkeypatch) -> None:
    # Read by the worker processes' settings (env), before `celery_worker_process` starts the first one.
    monkeypatch.setenv("BATCH_CHUNK_TIMEOUT", str(CHUNK_TIMEOUT_S))


@pytest.mark.celery_worker
@pytest.mark.slow
@pytest.mark.timeout(180)
def test_it_finishes_a_batch_after_its_worker_is_killed(short_chunk_timeout, celery_worker_process, tmp_path,
                                                        settings) -> None:
    from inference.tasks.batch import batch_chunks_reap_task

    batch = _queue(item_delay_s=0.25)
    _wait_for(lambda: BatchChunk.objects.filter(batch=batch, status="done").exists()
              and BatchChunk.objects.filter(batch=batch, status="running").exists(), timeout=60)
    os.kill(celery_worker_process.pid, signal.SIGKILL)  # no warm shutdown, no acks: a crashed node
    celery_worker_process.wait(timeout=10)
    killed_mid_chunk = set(BatchChunk.objects.filter(batch=batch, status="running").values_list("pk", flat=True))
    assert killed_mid_chunk, "the worker died with no chunk in flight: nothing was tested"

    second = start_worker(tmp_path / "worker2.log", settings.MEDIA_ROOT)
    try:
        # What beat does every BATCH_REAPER_INTERVAL, sent through the broker to the new worker.
        _wait_for(lambda: Batch.objects.get(pk=batch.pk).status == "succeeded", timeout=120,
                  every=batch_chunks_reap_task.delay)
    finally:
        stop_worker(second)
    _assert_every_result_exactly_once(batch)
    recovered = BatchChunk.objects.filter(pk__in=killed_mid_chunk)
    assert all(attempts >= 2 for attempts in recovered.values_list("attempts", flat=True))


# --- Redis restart ----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _redis_start(port: int, workdir: Path) -> subprocess.Popen:
    # No persistence, like a cache-configured Redis: a restart loses every queued message.
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(workdir)], stdout=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    _wait_for(lambda: _redis_up(client), timeout=10)
    return proc


def _redis_up(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


@pytest.fixture
def own_redis(tmp_path, monkeypatch) -> Iterator[tuple[int, Callable[[], None]]]:
    """A private redis-server (never the shared one) and a function that restarts it."""
    from evalplatform.celery import app

    port = _free_port()
    state = {"proc": _redis_start(port, tmp_path)}

    def restart() -> None:
        state["proc"].kill()
        state["proc"].wait()
        state["proc"] = _redis_start(port, tmp_path)

    url = f"redis://127.0.0.1:{port}/0"
    monkeypatch.setenv("REDIS_URL", url)  # for the worker processes
    old_url = app.conf.broker_url
    _broker_switch(app, url)
    try:
        yield port, restart
    finally:
        _broker_switch(app, old_url)
        state["proc"].kill()
        state["proc"].wait()


def _broker_switch(app: object, url: str) -> None:
    # The test process publishes too (batch_queue, the reaper task): point its cached pools at `url`.
    app.conf.broker_url = url
    broker_pools_reset(app)


@pytest.mark.celery_worker
@pytest.mark.slow
@pytest.mark.timeout(180)
def test_it_recovers_messages_lost_in_a_redis_restart(short_chunk_timeout, own_redis, transactional_db, settings,
                                                      tmp_path) -> None:
    from evalplatform.celery import app
    from inference.tasks.batch import batch_chunks_reap_task

    port, redis_restart = own_redis
    settings.CELERY_TASK_ALWAYS_EAGER = False
    app.conf.task_always_eager = False
    worker = start_worker(tmp_path / "worker.log", settings.MEDIA_ROOT)
    try:
        batch = _queue(item_delay_s=0.25)
        _wait_for(lambda: BatchChunk.objects.filter(batch=batch, status="done").count() >= 2, timeout=60)
        assert redis.Redis(port=port).llen("va") > 0, "no message was waiting in Redis: nothing to lose"
        redis_restart()
        assert redis.Redis(port=port).llen("va") == 0  # the queued messages are gone with the restart
        waiting = BatchChunk.objects.filter(batch=batch, status="queued").count()
        assert waiting > 0, "every chunk had already started: the restart lost nothing"

        _wait_for(lambda: Batch.objects.get(pk=batch.pk).status == "succeeded", timeout=120,
                  every=batch_chunks_reap_task.delay)
        assert worker.poll() is None, "the worker should ride out the broker restart"
    finally:
        stop_worker(worker)
        app.conf.task_always_eager = True
    _assert_every_result_exactly_once(batch)
    assert BatchChunk.objects.filter(batch=batch).count() == 2 * (SAMPLES // 2)  # va + generate, chunks of 2
