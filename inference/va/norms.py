"""Word-level valence/arousal/dominance norms (Warriner et al. 2013, NRC VAD 2018) on a common [-1, 1] scale.

Used to anchor the FER classes in VA space (expression.py) and by the lexicon baseline of the LLM
stage (nearest emotion words to a VA point). Loaded once per process and path: the Warriner file is
3.7 MB of CSV, and every Celery chunk would otherwise re-parse it.
"""
from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from inference.loading import ProcessCache

WARRINER_COLUMNS = ("Word", "V.Mean.Sum", "A.Mean.Sum", "D.Mean.Sum")


@dataclass(frozen=True)
class WordNorms:
    source: str  # "warriner" | "nrc"
    path: str
    sha256: str  # of the file: recorded with anything derived from it
    words: list[str]
    valence: np.ndarray  # float32 in [-1, 1]: Warriner (x-5)/4, NRC 2x-1
    arousal: np.ndarray
    dominance: np.ndarray
    _index: dict[str, int] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self._index:
            # First occurrence wins; both files hold one row per lower-cased lemma anyway.
            index: dict[str, int] = {}
            for i, word in enumerate(self.words):
                index.setdefault(word.lower(), i)
            object.__setattr__(self, "_index", index)

    def __len__(self) -> int:
        return len(self.words)

    def get(self, word: str) -> tuple[float, float, float] | None:
        """(valence, arousal, dominance) of `word`, case-insensitive; None when the norm lacks it."""
        i = self._index.get(word.strip().lower())
        if i is None:
            return None
        return float(self.valence[i]), float(self.arousal[i]), float(self.dominance[i])


_cache: ProcessCache[WordNorms] = ProcessCache()


def word_norms_load(path: str | None = None) -> WordNorms:
    """Load a norm file (None -> settings.WORD_NORMS); the format is detected from the content.

    Warriner: CSV with a header holding Word, V.Mean.Sum, A.Mean.Sum, D.Mean.Sum (1..9 scale).
    NRC VAD: tab-separated word, valence, arousal, dominance (0..1 scale), no header.
    Raises ImproperlyConfigured naming WORD_NORMS when no path is configured, ValueError naming the
    path when the file is missing, unreadable or in neither format.
    """
    if path is None:
        path = getattr(settings, "WORD_NORMS", "") or ""
        if not str(path).strip():
            raise ImproperlyConfigured(
                "WORD_NORMS is not set: point it at the Warriner CSV or the NRC VAD lexicon "
                "(e.g. assets/warriner-vad-norms/Ratings_Warriner_et_al.csv, shipped with the repository)."
            )
    key = str(Path(path).expanduser().resolve())
    return _cache.get(key, lambda: _parse(key))


def _parse(path: str) -> WordNorms:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"word norms file {path} cannot be read: {exc.strerror or exc}") from exc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"word norms file {path} is not UTF-8 text") from exc
    first_line = text.split("\n", 1)[0]
    if all(column in first_line for column in WARRINER_COLUMNS):
        source, rows = "warriner", _warriner_rows(text, path)
    elif first_line.count("\t") == 3:
        source, rows = "nrc", _nrc_rows(text, path)
    else:
        raise ValueError(
            f"word norms file {path} is in an unknown format: expected a Warriner CSV header "
            f"({', '.join(WARRINER_COLUMNS)}) or NRC VAD tab-separated word/valence/arousal/dominance lines"
        )
    if not rows:
        raise ValueError(f"word norms file {path} holds no entries")
    words = [row[0] for row in rows]
    values = np.asarray([row[1:] for row in rows], dtype=np.float64)
    if source == "warriner":
        if values.min() < 1 or values.max() > 9:
            raise ValueError(f"word norms file {path}: Warriner ratings must lie in 1..9")
        scaled = (values - 5.0) / 4.0
    else:
        if values.min() < 0 or values.max() > 1:
            raise ValueError(f"word norms file {path}: NRC VAD scores must lie in 0..1")
        scaled = 2.0 * values - 1.0
    scaled = scaled.astype(np.float32)
    return WordNorms(
        source=source, path=path, sha256=hashlib.sha256(data).hexdigest(), words=words,
        valence=scaled[:, 0].copy(), arousal=scaled[:, 1].copy(), dominance=scaled[:, 2].copy(),
    )


def _warriner_rows(text: str, path: str) -> list[tuple[str, float, float, float]]:
    rows = []
    for line_no, record in enumerate(csv.DictReader(io.StringIO(text)), start=2):
        try:
            rows.append((record["Word"].strip(), float(record["V.Mean.Sum"]), float(record["A.Mean.Sum"]),
                         float(record["D.Mean.Sum"])))
        except (TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"word norms file {path}, line {line_no}: not a valid Warriner row") from exc
    return rows


def _nrc_rows(text: str, path: str) -> list[tuple[str, float, float, float]]:
    rows = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split("\t")
        try:
            if len(parts) != 4:
                raise ValueError
            rows.append((parts[0].strip(), float(parts[1]), float(parts[2]), float(parts[3])))
        except ValueError as exc:
            raise ValueError(f"word norms file {path}, line {line_no}: expected word<TAB>v<TAB>a<TAB>d") from exc
    return rows
