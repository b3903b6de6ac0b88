"""Every way of running a stage goes through a Batch planned by the stage registry: the commands, the
experiment runner, inline and on a worker give the same rows and the same progress."""
from __future__ import annotations

import time
from io import StringIO

import pytest
from django.core.management import call_command

from inference.models import Batch, Dataset, Generation, Similarity, VAEstimate
from inference.services.batches import batch_progress, batch_queue, batch_run_inline
from inference.services.llm import llm_config_defaults_ensure, prompt_defaults_ensure
from inference.services.similarity import embedding_memo_clear
from inference.stages import STAGES
from tests.factories import dataset_make, sample_make
from tests.inference.test_embeddings import tiny_word_vectors


@pytest.fixture
def faces(tmp_path, settings, monkeypatch) -> Dataset:
    settings.WORD_VECTORS = str(tiny_word_vectors(tmp_path))
    monkeypatch.setenv("WORD_VECTORS", settings.WORD_VECTORS)  # for a worker process started after this
    embedding_memo_clear()
    prompt_defaults_ensure()
    llm_config_defaults_ensure()
    dataset = dataset_make("faces", label_set=["happiness", "sadness"])
    for i in range(5):
        sample_make(dataset, f"s{i}", references=["happy person"], labels=["happiness"], gt=(0.1 * i, -0.1 * i))
    return dataset


def _finished(batch: Batch) -> None:
    progress = batch_progress(batch=batch)
    assert progress["finished"] and progress["status"] == "succeeded"
    assert progress["done"] == progress["total"] > 0 and progress["percent"] == 100.0
    assert all(stage["planned"] and stage["done"] == stage["total"] for stage in progress["stages"])


@pytest.mark.django_db
def test_it_runs_each_stage_command_as_a_batch_with_progress(faces, tmp_path) -> None:
    call_command("extract_va", "faces", "--source", "dataset", "--inline", stdout=StringIO(), stderr=StringIO())
    call_command("generate", "faces", "--config", "lexicon-warriner", "--task", "describe", "--inline",
                 stdout=StringIO(), stderr=StringIO())
    call_command("compute_similarity", "faces", "--embedders", "word", "--inline", stdout=StringIO(),
                 stderr=StringIO())
    va, generate, similarity = Batch.objects.order_by("id")
    assert [b.stages for b in (va, generate, similarity)] == [["va"], ["generate"], ["similarity"]]
    for batch in (va, generate, similarity):
        _finished(batch)
    assert (va.total, generate.total, similarity.total) == (5, 5, 5)
    assert VAEstimate.objects.count() == 5 and Similarity.objects.count() == 5

    call_command("run_experiment", "--dataset", "faces", "--va-source", "dataset", "--configs", "lexicon-warriner",
                 "--prompts", "categorize-basic,describe", "--embedders", "word", "--out", str(tmp_path / "out"),
                 stdout=StringIO(), stderr=StringIO())
    experiment = Batch.objects.order_by("id").last()
    # VA and the describe answers exist: the experiment's batch starts at generate, for categorize only.
    assert experiment.stages == ["generate", "similarity"] and experiment.plan["generate"]["reused"] == 5
    assert experiment.total == 5 and experiment.chunks.get().params["prompt_id"] != generate.chunks.get().params[
        "prompt_id"]
    assert experiment.plan["similarity"]["note"].startswith("all 5 descriptions are already scored")
    assert experiment.status == "succeeded" and experiment.done == 5


@pytest.mark.django_db
def test_run_experiment_on_a_fresh_dataset_is_one_batch_with_every_stage(faces, tmp_path) -> None:
    call_command("run_experiment", "--dataset", "faces", "--va-source", "dataset", "--configs", "lexicon-warriner",
                 "--prompts", "categorize-basic,describe", "--embedders", "word", "--out", str(tmp_path / "out"),
                 stdout=StringIO(), stderr=StringIO())
    batch = Batch.objects.get()
    assert batch.stages == ["va", "generate", "similarity"]
    _finished(batch)
    assert batch.total == 5 + 10 + 5


def _three_stage_batch(dataset: Dataset, *, inline: bool) -> Batch:
    from inference.models import LLMConfig, PromptTemplate

    return batch_queue(dataset=dataset, stages=["va", "generate", "similarity"], va_source="dataset",
                       configs=[LLMConfig.objects.get(name="lexicon-warriner")],
                       prompts=[PromptTemplate.objects.filter(name="describe").order_by("-version").first()],
                       embedders=["word"], chunk_size=2, inline=inline)


def _same_outcome(batch: Batch) -> None:
    _finished(batch)
    assert [(s["stage"], s["total"]) for s in batch_progress(batch=batch)["stages"]] == [
        ("va", 5), ("generate", 5), ("similarity", 5)]
    assert sorted(batch.chunks.values_list("stage", flat=True)) == ["generate"] * 3 + ["similarity"] * 3 + ["va"] * 3
    assert Generation.objects.filter(status="ok").count() == 5
    assert Similarity.objects.count() == 5


@pytest.mark.django_db
def test_it_runs_a_batch_inline(faces) -> None:
    batch = _three_stage_batch(faces, inline=True)
    _same_outcome(batch_run_inline(batch_id=batch.pk))


@pytest.mark.slow
@pytest.mark.celery_worker
def test_it_runs_the_same_batch_on_the_embedded_worker(transactional_db, faces, embedded_worker_process) -> None:
    batch = _three_stage_batch(faces, inline=False)
    deadline = time.monotonic() + 120
    while batch.status in ("queued", "running") and time.monotonic() < deadline:
        assert embedded_worker_process.poll() is None, "worker died"
        time.sleep(0.5)
        batch.refresh_from_db()
    _same_outcome(batch)


def test_it_derives_queue_routing_from_the_registry() -> None:
    assert {name: stage.queue for name, stage in STAGES.items()} == {"va": "va", "generate": "llm",
                                                                     "similarity": "embed"}
