"""The VA stage: one VAEstimate per (sample, source, model_sha256), upserted, never duplicated.

Sources: `facechannel` (the paper's model, settings.FACECHANNEL_WEIGHTS), `expression` (VA derived
from the FER2013 classifier, always labelled derived) and `dataset` (the imported ground truth).
A sample with no face is a recorded outcome (status no_face); a sample that cannot be processed
(unreadable image, empty body box, no ground truth) gets status error with the reason. Neither stops
the other samples. What stops the whole call, before anything is written, is a stage that cannot
run at all: an unknown source, a missing setting or model file, or a weights file of another model.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.conf import settings

from inference.faces import Detection, FaceDetector, face_detector_load
from inference.loading import file_sha256, setting_file
from inference.models import Sample, VAEstimate
from inference.va.pipeline import face_prepare, va_pipeline_run

logger = logging.getLogger(__name__)

DATASET_MODEL = "dataset"  # model_sha256 of ground-truth rows
# The files each model source needs; the first one is the model whose sha256 is the version.
SOURCE_SETTINGS = {
    VAEstimate.Source.FACECHANNEL: ("FACECHANNEL_WEIGHTS",),
    VAEstimate.Source.EXPRESSION: ("EXPRESSION_MODEL", "WORD_NORMS"),
}


@dataclass
class _Outcome:
    status: str
    valence: float | None = None
    arousal: float | None = None
    detection: Detection | None = None
    details: dict[str, Any] = field(default_factory=dict)
    error: str = ""


@dataclass
class _Prepared:
    """A decoded sample whose face was found, waiting for the batched forward pass."""

    sample_id: int
    detection: Detection
    face: np.ndarray


class _Model:
    """What a source needs to turn face crops into VA: sha256, preprocessing, batched prediction."""

    sha256: str
    base_details: dict[str, Any]

    def preprocess(self, image: np.ndarray, box: list[int]) -> np.ndarray:
        raise NotImplementedError

    def predict(self, faces: np.ndarray) -> list[tuple[float, float, dict[str, Any]]]:
        """(valence, arousal, per-face details) for each face."""
        raise NotImplementedError


class _FaceChannel(_Model):
    def __init__(self) -> None:
        # Imported here, not at module level: the web process imports this module (batch planning)
        # and must not pay for torch.
        from inference.va.facechannel import facechannel_load, facechannel_predict, preprocess

        loaded = facechannel_load()
        self._model, self._predict, self._preprocess = loaded.model, facechannel_predict, preprocess
        self.sha256 = loaded.version  # int8 (opt-in) results get their own version, never mixed with fp32
        self.base_details = {"derived": False, "model": "FaceChannelV1 Dim (PyTorch port)",
                             "runtime": getattr(loaded.model, "runtime", "torch"), **loaded.info.details(),
                             **(loaded.precision_details or {})}

    def preprocess(self, image: np.ndarray, box: list[int]) -> np.ndarray:
        return self._preprocess(image, box)

    def predict(self, faces: np.ndarray) -> list[tuple[float, float, dict[str, Any]]]:
        # The network's output order is (arousal, valence).
        return [(float(v), float(a), {}) for a, v in self._predict(self._model, faces)]


class _Expression(_Model):
    def __init__(self) -> None:
        from inference.va import expression
        from inference.va.norms import word_norms_load

        self._expression = expression
        self._model = expression.expression_model_load()
        self._anchors = expression.expression_anchors(word_norms_load())
        self.sha256 = self._model.sha256
        self.base_details = {"derived": True, "model": "FER2013 mini-Xception (ONNX)",
                             "label": "VA derived from expression-class probabilities, not FaceChannel",
                             **self._anchors.details()}

    def preprocess(self, image: np.ndarray, box: list[int]) -> np.ndarray:
        return self._expression.expression_preprocess(image, box)

    def predict(self, faces: np.ndarray) -> list[tuple[float, float, dict[str, Any]]]:
        probabilities = self._model.predict(faces)
        va = self._expression.expression_va(probabilities, self._anchors)
        return [(float(v), float(a), self._expression.expression_prediction(p))
                for (v, a), p in zip(va, probabilities, strict=True)]


def va_source_check(*, source: str) -> str:
    if source not in VAEstimate.Source.values:
        raise ValueError(f"unknown VA source {source!r} (choose from {', '.join(VAEstimate.Source.values)})")
    return source


def va_source_ready(*, source: str) -> None:
    """Raise ImproperlyConfigured naming the setting when a source's model files are missing.

    Reads no model, so the web process can refuse a batch that could only fail."""
    for setting in SOURCE_SETTINGS.get(va_source_check(source=source), ()):
        setting_file(setting)


def va_model_version_configured(*, source: str) -> str | None:
    """The model_sha256 the source would write now: its model file's hash ("dataset" for ground truth).

    None when it is only known once the model is built (opt-in int8 FaceChannel: the version includes
    the calibration set), so nothing can be counted as computed already."""
    settings_needed = SOURCE_SETTINGS.get(va_source_check(source=source))
    if not settings_needed:
        return DATASET_MODEL
    if source == VAEstimate.Source.FACECHANNEL and getattr(settings, "FACECHANNEL_PRECISION", "fp32") != "fp32":
        return None
    return file_sha256(setting_file(settings_needed[0]))


def _ids_check(sample_ids: object) -> list[int]:
    if not isinstance(sample_ids, list | tuple) or not all(
            isinstance(i, int) and not isinstance(i, bool) for i in sample_ids):
        raise ValueError(f"sample_ids must be a list of integers, got {sample_ids!r:.200}")
    return list(dict.fromkeys(sample_ids))


def va_extract_samples(*, sample_ids: list[int], source: str) -> dict:
    """Compute and upsert the VA of these samples with one source.

    Returns {"done": n, "failed": n, "no_face": n, "errors": {sample_id: message}}; `done` counts every
    sample with a recorded outcome (ok or no_face), `failed` those stored with status error (and ids
    that no longer exist). Raises only when the source cannot run at all (nothing is written then).
    """
    va_source_check(source=source)
    ids = _ids_check(sample_ids)
    samples = {s.pk: s for s in Sample.objects.filter(pk__in=ids)}
    if source == VAEstimate.Source.DATASET:
        outcomes, sha = {pk: _ground_truth(sample) for pk, sample in samples.items()}, DATASET_MODEL
        base_details: dict[str, Any] = {"derived": False, "model": "dataset ground truth"}
    else:
        # Load (and validate) everything first: a missing model fails the call before any row is written.
        model = _FaceChannel() if source == VAEstimate.Source.FACECHANNEL else _Expression()
        outcomes, sha, base_details = _run_model(model, list(samples.values()), face_detector_load()), \
            model.sha256, model.base_details

    errors: dict[int, str] = {pk: f"sample {pk} does not exist" for pk in ids if pk not in samples}
    no_face = 0
    for pk, outcome in outcomes.items():
        try:
            _store(samples[pk], source=source, model_sha256=sha, outcome=outcome, base_details=base_details)
        except Exception as exc:  # noqa: BLE001 - e.g. the sample was deleted meanwhile; the others still count
            logger.exception("VA upsert failed for sample %s", pk)
            errors[pk] = f"could not store the result: {type(exc).__name__}: {exc}"
            continue
        if outcome.status == VAEstimate.Status.ERROR:
            errors[pk] = outcome.error
        elif outcome.status == VAEstimate.Status.NO_FACE:
            no_face += 1
    return {"done": len(ids) - len(errors), "failed": len(errors), "no_face": no_face, "errors": errors}


def _ground_truth(sample: Sample) -> _Outcome:
    if sample.gt_valence is None or sample.gt_arousal is None:
        return _Outcome(VAEstimate.Status.ERROR,
                        error="sample has no ground-truth valence/arousal (the dataset did not provide them)")
    values = (sample.gt_valence, sample.gt_arousal)
    if not all(math.isfinite(v) and -1.0 <= v <= 1.0 for v in values):
        # The importers rescale to [-1, 1]; anything else would be compared with model output on another scale.
        return _Outcome(VAEstimate.Status.ERROR, error=f"ground-truth valence/arousal {values} is outside [-1, 1]")
    return _Outcome(VAEstimate.Status.OK, valence=sample.gt_valence, arousal=sample.gt_arousal,
                    details={"gt_dominance": sample.gt_dominance})


def _prepare(sample: Sample, detector: FaceDetector, model: _Model) -> _Prepared | _Outcome:
    """Decode, detect, crop one sample. Every failure becomes an error outcome naming what went wrong."""
    try:
        with sample.image.open("rb") as handle:
            data = handle.read()
    except Exception as exc:  # noqa: BLE001 - storage backends raise many types for a missing file
        return _Outcome(VAEstimate.Status.ERROR, error=f"image {sample.image.name!r} cannot be read: {exc}")
    try:
        found = face_prepare(data, body_box=_body_box(sample.body_box), preprocess=model.preprocess, detector=detector)
        if found.face is None:
            return _Outcome(VAEstimate.Status.NO_FACE, detection=found.detection)
        return _Prepared(sample.pk, found.detection, found.face)
    except (ValueError, TypeError) as exc:
        return _Outcome(VAEstimate.Status.ERROR, error=f"image {sample.image.name!r}: {exc}")


def _body_box(value: object) -> list[int] | None:
    if value in (None, [], {}):
        return None
    if not isinstance(value, list | tuple) or len(value) != 4 or not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in value):
        raise ValueError(f"body box {value!r} is not [x, y, w, h]")
    return list(value)


def _run_model(model: _Model, samples: list[Sample], detector: FaceDetector) -> dict[int, _Outcome]:
    # Decode + detect of the next samples overlap the model's batch (inference/va/pipeline.py).
    ran = va_pipeline_run(samples, prepare=lambda s: _prepare(s, detector, model),
                          face=lambda p: p.face if isinstance(p, _Prepared) else None, predict=model.predict)
    outcomes: dict[int, _Outcome] = {}
    for sample, (item, result) in zip(samples, ran, strict=True):
        if result is None:
            outcomes[sample.pk] = item
        else:
            valence, arousal, details = result
            outcomes[sample.pk] = _Outcome(VAEstimate.Status.OK, valence=valence, arousal=arousal,
                                           detection=item.detection, details=details)
    return outcomes


def _store(sample: Sample, *, source: str, model_sha256: str, outcome: _Outcome, base_details: dict) -> None:
    detection = outcome.detection
    box = detection.box if detection else None
    details = {**base_details, **(detection.details() if detection else {}), **outcome.details}
    # Every field is in `defaults`, so a re-run overwrites a stale value or error from the last run.
    VAEstimate.objects.update_or_create(
        sample=sample, source=source, model_sha256=model_sha256,
        defaults={
            "status": outcome.status, "valence": outcome.valence, "arousal": outcome.arousal,
            "detector": detection.detector if detection else "",
            "face_box": box.as_list() if box else None,
            "face_score": box.score if box else None,
            "face_count": len(detection.boxes) if detection else 0,
            "details": details, "error": outcome.error,
        },
    )
