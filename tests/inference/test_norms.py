"""Word norms: values checked against the ones printed in the asset READMEs."""
from __future__ import annotations

import numpy as np
import pytest
from django.core.exceptions import ImproperlyConfigured

from inference.va.norms import word_norms_load
from tests.conftest import ASSETS, unshipped_asset

WARRINER = ASSETS / "warriner-vad-norms" / "Ratings_Warriner_et_al.csv"
NRC_TERMS = "NRC's terms say 'do not redistribute'"
# NRC VAD's published scores for four words (nrc-vad-lexicon/README.md), in its file format: the lexicon
# itself may not be redistributed.
NRC_LINES = "angry\t0.122\t0.830\t0.604\nbored\t0.153\t0.167\t0.196\ncalm\t0.875\t0.100\t0.282\nhappy\t1.000\t0.735\t0.772"


@pytest.fixture
def nrc(tmp_path) -> str:
    path = tmp_path / "NRC-VAD-Lexicon.txt"
    path.write_text(NRC_LINES)  # no trailing newline, like the release
    return str(path)


@pytest.mark.parametrize(("word", "raw"), [
    ("happy", (8.47, 6.05, 7.21)), ("calm", (6.89, 1.67, 7.44)),
    ("angry", (2.53, 6.20, 4.11)), ("bored", (2.95, 3.65, 4.96)),
])
def test_it_rescales_warriner_ratings_to_minus_one_one(word: str, raw: tuple[float, float, float]) -> None:
    norms = word_norms_load(str(WARRINER))
    assert norms.source == "warriner"
    assert norms.get(word) == pytest.approx([(x - 5) / 4 for x in raw], abs=1e-6)


@pytest.mark.parametrize(("word", "raw"), [
    ("happy", (1.000, 0.735, 0.772)), ("calm", (0.875, 0.100, 0.282)),
    ("angry", (0.122, 0.830, 0.604)), ("bored", (0.153, 0.167, 0.196)),
])
def test_it_rescales_nrc_scores_to_minus_one_one(nrc, word: str, raw: tuple[float, float, float]) -> None:
    norms = word_norms_load(nrc)
    assert norms.source == "nrc"
    assert norms.get(word) == pytest.approx([2 * x - 1 for x in raw], abs=1e-6)


def test_it_reads_the_whole_shipped_warriner_file_as_float32_with_its_hash() -> None:
    warriner = word_norms_load(str(WARRINER))
    assert len(warriner) == 13915 and warriner.valence.dtype == np.float32
    assert warriner.sha256 == "78ac8107c78e116bb96538fae4faa47281a155f5f8fe39f30bbc6ea3db05b446"
    assert -1 <= warriner.valence.min() and warriner.valence.max() <= 1


def test_it_reads_the_whole_nrc_lexicon_as_float32_with_its_hash() -> None:
    nrc = word_norms_load(str(unshipped_asset("nrc-vad-lexicon/NRC-VAD-Lexicon.txt", NRC_TERMS)))
    assert len(nrc) == 19974 and nrc.arousal.dtype == np.float32
    assert nrc.sha256 == "ed523f92116fa0dce6168552f5b9fdfda4fbbb640df667c187486d1d3ce31b95"
    assert -1 <= nrc.valence.min() and nrc.valence.max() <= 1


def test_it_looks_words_up_case_insensitively_and_returns_none_for_unknown_words() -> None:
    norms = word_norms_load(str(WARRINER))
    assert norms.get("HAPPY") == norms.get("happy") == norms.get(" Happy ")
    assert norms.get("xyzzy-not-a-word") is None


def test_it_loads_each_path_once_per_process() -> None:
    assert word_norms_load(str(WARRINER)) is word_norms_load(str(WARRINER))


def test_it_defaults_to_the_word_norms_setting(settings, nrc) -> None:
    settings.WORD_NORMS = nrc
    assert word_norms_load().source == "nrc"


@pytest.mark.parametrize("value", ["", "   "])
def test_it_names_the_setting_when_word_norms_is_unset(settings, value: str) -> None:
    settings.WORD_NORMS = value
    with pytest.raises(ImproperlyConfigured, match="WORD_NORMS"):
        word_norms_load()


def test_it_rejects_a_missing_file_naming_the_path(tmp_path) -> None:
    missing = tmp_path / "nope.csv"
    with pytest.raises(ValueError, match="nope.csv"):
        word_norms_load(str(missing))


@pytest.mark.parametrize(("name", "content"), [
    ("unknown.csv", "word,valence\nhappy,1\n"),
    ("empty.txt", ""),
    ("binary.bin", b"\xff\xfe\x00garbage"),
    ("badrow.txt", "happy\t1.0\t0.7\t0.7\nsad\tnot-a-number\t0.2\t0.3\n"),
    ("outofrange.txt", "happy\t7.0\t0.7\t0.7\n"),
])
def test_it_rejects_an_unreadable_or_unknown_file_naming_the_path(tmp_path, name: str, content) -> None:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(ValueError, match=name):
        word_norms_load(str(path))
