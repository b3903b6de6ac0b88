"""`manage.py generate` and `manage.py llm_defaults`: the in-process run and every bad input."""
from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from inference.models import Batch, Dataset, Generation, LLMConfig, Sample, VAEstimate
from tests.factories import sample_make


@pytest.fixture
def seeded(db) -> Dataset:
    call_command("llm_defaults", stdout=StringIO())
    dataset = Dataset.objects.create(name="faces", format="folder", label_set=["happiness"], multilabel=False)
    for i, (valence, arousal, status) in enumerate([(0.8, 0.4, "ok"), (-0.7, -0.5, "ok"), (None, None, "no_face")]):
        sample = sample_make(dataset, f"s{i}", image_sha256=f"{i:064d}")
        VAEstimate.objects.create(sample=sample, source="expression", model_sha256="m" * 64, status=status,
                                  valence=valence, arousal=arousal)
    return dataset


def generate(*args: str) -> str:
    out = StringIO()
    call_command("generate", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_it_generates_a_dataset_in_process_and_summarises(seeded):
    out = generate("faces", "--config", "lexicon-warriner", "--task", "categorize", "--sync")
    assert "2 done, 0 failed, 1 skipped without VA (2 ok)" in out
    labels = sorted(tuple(g.labels) for g in Generation.objects.filter(prompt__name="categorize-basic"))
    assert labels == [("happiness",), ("sadness",)]
    # Re-running reuses the cached rows.
    generate("faces", "--config", "lexicon-warriner", "--task", "categorize", "--sync")
    assert Generation.objects.count() == 2


def test_it_uses_the_named_prompt_version(seeded):
    generate("faces", "--config", "lexicon-warriner", "--task", "describe", "--prompt", "describe-words@1")
    assert set(Generation.objects.values_list("prompt__name", "prompt__version")) == {("describe-words", 1)}


def test_it_queues_a_generate_batch_when_celery_is_not_eager(seeded, settings, monkeypatch,
                                                             django_capture_on_commit_callbacks):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    sent: list = []
    monkeypatch.setattr("inference.tasks.batch.batch_chunk_run_task.apply_async",
                        lambda *a, **k: sent.append(k))  # no broker round trip here; test_batches covers it
    with django_capture_on_commit_callbacks(execute=True):
        out = generate("faces", "--config", "lexicon-warriner", "--task", "describe", "--chunk-size", "1")
    batch = Batch.objects.get()
    assert batch.stages == ["generate"] and batch.total == 2 and f"queued batch {batch.pk}" in out
    assert [k["queue"] for k in sent] == ["llm", "llm"]
    assert not Generation.objects.exists()


@pytest.mark.parametrize("args, message", [
    (["nope", "--config", "lexicon-warriner", "--task", "describe"], "unknown dataset 'nope'"),
    (["faces", "--config", "nope", "--task", "describe"], r"unknown LLM config\(s\) 'nope'"),
    (["faces", "--config", "lexicon-warriner", "--task", "describe", "--prompt", "nope"], "unknown prompt 'nope'"),
    (["faces", "--config", "lexicon-warriner", "--task", "describe", "--prompt", "categorize-basic"],
     "is a categorize prompt, not describe"),
    (["faces", "--config", "lexicon-warriner", "--task", "categorize", "--prompt", "categorize-emotic"],
     r"lists the Emotic \(multi-label\) labels but dataset faces uses basic"),
    (["faces", "--config", "lexicon-warriner", "--task", "describe", "--va-source", "facechannel"],
     "has no 'facechannel' VA estimates"),
    (["faces", "--config", "lexicon-warriner", "--task", "describe", "--chunk-size", "0"], "--chunk-size"),
])
def test_it_rejects_bad_input_with_a_clear_error(seeded, args, message):
    with pytest.raises(CommandError, match=message):
        generate(*args)
    assert not Generation.objects.exists()


def test_it_names_the_missing_model_setting(seeded, settings):
    settings.GGUF_MODEL = "/nonexistent/model.gguf"
    with pytest.raises(CommandError, match="GGUF_MODEL points at /nonexistent/model.gguf"):
        generate("faces", "--config", "smollm2-gguf", "--task", "describe", "--sync")


def test_it_asks_for_a_va_source_when_the_dataset_has_several(seeded):
    sample = Sample.objects.first()
    VAEstimate.objects.create(sample=sample, source="dataset", model_sha256="dataset", valence=0.1, arousal=0.1)
    with pytest.raises(CommandError, match="choose one with --va-source"):
        generate("faces", "--config", "lexicon-warriner", "--task", "describe")


def test_it_creates_defaults_idempotently(db):
    out = StringIO()
    call_command("llm_defaults", stdout=out)
    call_command("llm_defaults", stdout=out)
    assert "6 prompt(s), 2 LLM config(s) ready" in out.getvalue()
    assert set(LLMConfig.objects.values_list("name", flat=True)) == {"smollm2-gguf", "lexicon-warriner"}


def test_it_passes_the_concurrency_to_the_generate_chunks_and_refuses_a_bad_one(seeded):
    generate("faces", "--config", "lexicon-warriner", "--task", "describe", "--concurrency", "3", "--chunk-size", "1")
    batch = Batch.objects.get()
    assert {chunk.params["concurrency"] for chunk in batch.chunks.all()} == {3} and batch.done == 2
    with pytest.raises(CommandError, match="concurrency must be an integer from 1 to 256"):
        generate("faces", "--config", "lexicon-warriner", "--task", "categorize", "--concurrency", "0")
    assert Batch.objects.count() == 1
