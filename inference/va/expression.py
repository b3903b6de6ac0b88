"""Derived VA from a categorical expression classifier (FER2013 mini-Xception, Arriaga et al. 2017).

The classifier gives probabilities over 7 FER classes. VA is the probability-weighted mean of one
anchor point per class, taken from a word norm (Warriner by default, NRC VAD optional; both already
on [-1, 1]). It is a heuristic, not a trained VA regressor, so it is always stored as source
`expression` and labelled derived, never as FaceChannel.

Anchor words (adjectives that describe a person showing the expression):
  angry -> "angry", disgust -> "disgusted", fear -> "scared", happy -> "happy", sad -> "sad",
  surprise -> "surprised", neutral -> (0, 0).
"neutral" is the circumplex origin rather than the norm's word "neutral": the norms rate the word
itself (Warriner: a calm, mildly positive word at V +0.13 A -0.39; NRC: A -0.63), which would pull
every neutral face towards low arousal. "scared" is used over "afraid" because Warriner rates
"afraid" near-zero arousal (+0.03), against the high arousal of fear in the circumplex.

The argmax class also gives the vision-only category prediction (mapped to the basic labels), the
baseline that the LLM-from-VA categorization is compared against.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from django.core.exceptions import ImproperlyConfigured

from inference.loading import ProcessCache, file_sha256, setting_file
from inference.va.norms import WordNorms

FER_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
FER_TO_BASIC = {"angry": "anger", "disgust": "disgust", "fear": "fear", "happy": "happiness",
                "sad": "sadness", "surprise": "surprise", "neutral": "neutral"}
CLASS_WORDS: dict[str, str | None] = {"angry": "angry", "disgust": "disgusted", "fear": "scared",
                                      "happy": "happy", "sad": "sad", "surprise": "surprised", "neutral": None}
INPUT_SIZE = 64
CROP_MARGIN = 10  # pixels added on each side of the square crop, as the `fer` package does


@dataclass(frozen=True)
class Anchors:
    norms_source: str
    norms_sha256: str
    words: dict[str, str | None]
    valence: np.ndarray  # (7,) in FER_CLASSES order
    arousal: np.ndarray

    def details(self) -> dict[str, Any]:
        return {
            "norms": self.norms_source, "norms_sha256": self.norms_sha256,
            "anchors": {c: {"word": self.words[c], "valence": round(float(v), 4), "arousal": round(float(a), 4)}
                        for c, v, a in zip(FER_CLASSES, self.valence, self.arousal, strict=True)},
        }


def expression_anchors(norms: WordNorms) -> Anchors:
    """The per-class VA anchors from `norms`; ValueError when the norm lacks one of the words."""
    valence, arousal = [], []
    for cls in FER_CLASSES:
        word = CLASS_WORDS[cls]
        if word is None:
            valence.append(0.0)
            arousal.append(0.0)
            continue
        found = norms.get(word)
        if found is None:
            raise ValueError(f"word norms {norms.path} have no entry for {word!r} (anchor of the {cls} class)")
        valence.append(found[0])
        arousal.append(found[1])
    return Anchors(norms_source=norms.source, norms_sha256=norms.sha256, words=dict(CLASS_WORDS),
                   valence=np.asarray(valence, np.float32), arousal=np.asarray(arousal, np.float32))


def expression_va(probabilities: np.ndarray, anchors: Anchors) -> np.ndarray:
    """(N, 7) probabilities -> (N, 2) (valence, arousal): the probability-weighted anchors.

    Rows are renormalised first so a model whose softmax sums to 1 +- rounding stays inside [-1, 1].
    """
    probs = np.asarray(probabilities, np.float64)
    probs = probs / probs.sum(axis=1, keepdims=True)
    return np.stack([probs @ anchors.valence, probs @ anchors.arousal], axis=1).astype(np.float32)


def expression_prediction(probabilities: np.ndarray) -> dict[str, Any]:
    """One face's class probabilities and its vision-only basic-label prediction."""
    top = int(np.argmax(probabilities))
    return {
        "probabilities": {c: round(float(p), 6) for c, p in zip(FER_CLASSES, probabilities, strict=True)},
        "fer_class": FER_CLASSES[top],
        "predicted_label": FER_TO_BASIC[FER_CLASSES[top]],
        "predicted_label_set": "basic",
        "predicted_probability": round(float(probabilities[top]), 6),
    }


def expression_preprocess(image_bgr: np.ndarray, box: list[int]) -> np.ndarray:
    """The mini-Xception input for one face, as the `fer` package makes it: a square crop of side
    max(w, h) + 20 around the box centre (edges replicated past the border), gray, 64x64,
    scaled to [-1, 1]. Returns (64, 64, 1) float32."""
    x, y, w, h = box
    if w <= 0 or h <= 0:
        raise ValueError(f"face box {box} is empty")
    side = max(w, h) + 2 * CROP_MARGIN
    cx, cy = x + w / 2.0, y + h / 2.0
    x0, y0 = int(round(cx - side / 2.0)), int(round(cy - side / 2.0))
    gray = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY) if image_bgr.ndim == 3 else image_bgr
    height, width = gray.shape
    pad = max(0, -x0, -y0, x0 + side - width, y0 + side - height)
    if pad:
        gray = cv2.copyMakeBorder(gray, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    face = gray[y0 + pad:y0 + pad + side, x0 + pad:x0 + pad + side]
    resized = cv2.resize(face, (INPUT_SIZE, INPUT_SIZE)).astype(np.float32)
    return ((resized / 255.0 - 0.5) * 2.0)[..., None]


class ExpressionModel:
    """The ONNX classifier through cv2.dnn; one cv2.dnn.Net per thread (a Net is not thread-safe)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.sha256 = file_sha256(path)
        self._local = threading.local()
        self.predict(np.zeros((1, INPUT_SIZE, INPUT_SIZE, 1), np.float32))  # a wrong model fails here, at load

    def _net(self) -> Any:
        net = getattr(self._local, "net", None)
        if net is None:
            try:
                net = self._local.net = cv2.dnn.readNetFromONNX(self.path)
            except cv2.error as exc:
                raise ImproperlyConfigured(f"EXPRESSION_MODEL={self.path} is not a readable ONNX model: {exc}") from exc
        return net

    def predict(self, faces: np.ndarray) -> np.ndarray:
        """(N, 64, 64, 1) float32 in [-1, 1] -> (N, 7) class probabilities.

        One face per forward: OpenCV 4.14's importer of this graph mis-shapes batches (N > 1 gives
        (N, 1, 7) rows of ones, softmax over the wrong axis), and a face costs only ~0.5 ms anyway.
        """
        net = self._net()
        outputs = np.zeros((len(faces), len(FER_CLASSES)), np.float32)
        for i, face in enumerate(faces):
            net.setInput(np.ascontiguousarray(face[None], dtype=np.float32))
            try:
                out = net.forward().reshape(-1)
            except cv2.error as exc:
                raise ImproperlyConfigured(
                    f"EXPRESSION_MODEL={self.path} does not take (N, 64, 64, 1) gray faces: {exc}") from exc
            if out.shape != (len(FER_CLASSES),) or abs(float(out.sum()) - 1.0) > 1e-3:
                raise ImproperlyConfigured(
                    f"EXPRESSION_MODEL={self.path} outputs {out.shape[0]} values summing to {out.sum():.3f}, "
                    "not softmax probabilities over the 7 FER2013 classes")
            outputs[i] = out
        return outputs


_cache: ProcessCache[ExpressionModel] = ProcessCache()


def expression_model_path(path: str | None = None) -> Path:
    """settings.EXPRESSION_MODEL (or `path`), checked to name a file; nothing is loaded."""
    return setting_file("EXPRESSION_MODEL", value=path,
                        hint="point it at fer2013_mini_XCEPTION.102-0.66.onnx (fer-mini-xception assets)")


def expression_model_load(path: str | None = None) -> ExpressionModel:
    """The classifier for settings.EXPRESSION_MODEL (or `path`), loaded once per process and file."""
    key = str(expression_model_path(path).resolve())
    return _cache.get(key, lambda: ExpressionModel(key))


@dataclass(frozen=True)
class ExpressionResult:
    """One face: derived VA, class probabilities and the vision-only basic-label prediction."""

    valence: float
    arousal: float
    probabilities: dict[str, float]
    predicted_label: str
    prediction: dict[str, Any]

    def details(self) -> dict[str, Any]:
        return {"derived": True, **self.prediction}


@dataclass(frozen=True)
class LoadedExpression:
    model: ExpressionModel
    anchors: Anchors

    @property
    def sha256(self) -> str:
        """Recorded as VAEstimate.model_sha256: the classifier's file (the norm is in details)."""
        return self.model.sha256

    def details(self) -> dict[str, Any]:
        return {"derived": True, "model": "FER2013 mini-Xception (ONNX)",
                "label": "VA derived from expression-class probabilities, not FaceChannel",
                **self.anchors.details()}


def expression_load(model_path: str | None = None, norms_path: str | None = None) -> LoadedExpression:
    """Classifier (settings.EXPRESSION_MODEL) and anchors (settings.WORD_NORMS), each cached per process."""
    from inference.va.norms import word_norms_load

    return LoadedExpression(model=expression_model_load(model_path),
                            anchors=expression_anchors(word_norms_load(norms_path)))


def expression_predict(loaded: LoadedExpression, faces: np.ndarray) -> list[ExpressionResult]:
    """(N, 64, 64, 1) faces from expression_preprocess -> one ExpressionResult per face."""
    probabilities = loaded.model.predict(faces)
    va = expression_va(probabilities, loaded.anchors)
    results = []
    for (valence, arousal), probs in zip(va, probabilities, strict=True):
        prediction = expression_prediction(probs)
        results.append(ExpressionResult(valence=float(valence), arousal=float(arousal),
                                        probabilities=prediction["probabilities"],
                                        predicted_label=prediction["predicted_label"], prediction=prediction))
    return results
