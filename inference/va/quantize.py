"""Opt-in int8 FaceChannel (FACECHANNEL_PRECISION=int8): static post-training quantisation.

fp32 stays the default and the one that matches the authors' Keras model. int8 is built from the fp32
port's ONNX graph (the one fp32 runs) with ONNX Runtime's quantisation tooling, and runs on ONNX Runtime:
- convolutions (BatchNorm folded in by the exporter) with their ReLUs, the pooling and the dense layers
  in int8 (QLinearConv, QGemm; `QUANTIZED_OPS`): per-channel symmetric int8 weights, uint8 activations
  with min/max ranges from the calibration faces; on CPUs without VNNI the weights use 7 bits
  (`weight_bits`), as int8 products saturate there;
- the shunting inhibition relu(conv10) / (0.5 + relu(conv10_inhibition)) is computed in float: a
  quotient of two quantised tensors amplifies their rounding where the denominator is small; the tanh
  of the two heads too.
PyTorch's own eager-mode tooling (fbgemm) was the first implementation. On the AVX2-only CPU it deviated
0.032 from fp32 with 8-bit activations (refused), and with 7-bit activations and a float dense layer it ran
at 1.40x ONNX Runtime's fp32 in one run (84.8 vs 60.7 images/s at load ~4), where this one gives 1.6-2.35x
(benchmarks/va_throughput.py).
Calibration runs the fp32 and int8 models on faces the user supplies (FACECHANNEL_INT8_CALIBRATION, a
folder of images) or the sample faces, each also mirrored. If the largest |int8 - fp32| over the
calibration set exceeds FACECHANNEL_INT8_MAX_DEVIATION (default 0.02 on [-1, 1]) the model is refused:
a wrong-but-fast model is worse than a slow one.
"""
from __future__ import annotations

import hashlib
import logging
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from torch import nn

from inference.loading import ProcessCache
from inference.va.facechannel import FaceChannelDim, OnnxFaceChannel, facechannel_onnx, preprocess

logger = logging.getLogger(__name__)

PRECISIONS = ("fp32", "int8")
DEFAULT_MAX_DEVIATION = 0.02
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
MIN_CALIBRATION_FACES = 4
# In int8: the convolutions (99.9 % of the arithmetic) with their ReLUs, the pooling, the dense layer and the
# heads' products (QLinearConv, QGemm); tanh and the shunting inhibition's sum and quotient stay float.
# Measured against keeping the dense layer float too: 0.008 instead of 0.016 from Keras on the fixture.
QUANTIZED_OPS = ["Conv", "MaxPool", "Relu", "Gemm"]


class Int8RefusedError(ImproperlyConfigured):
    """The int8 model deviates from fp32 by more than the bound on its own calibration set."""


def weight_bits() -> int:
    """Bits of the int8 weights: 8 on CPUs with VNNI; 7 on the others, where uint8 x int8 products go through
    16-bit saturating adds (vpmaddubsw) and full-range values overflow them (measured on an AVX2-only AMD EPYC:
    PyTorch's fbgemm with full-range values deviated 0.032 from fp32 and was refused). ONNX Runtime's
    `reduce_range` quantises the weights to 7 bits, which keeps every product pair inside 16 bits."""
    vnni = getattr(torch.cpu, "_is_vnni_supported", None)
    return 8 if vnni is not None and vnni() else 7


class _Calibration:
    """onnxruntime.quantization's CalibrationDataReader protocol over (N, 1, 64, 64) faces, 16 at a time."""

    def __init__(self, faces: np.ndarray) -> None:
        self._batches = iter([{"faces": faces[i:i + 16]} for i in range(0, len(faces), 16)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


def facechannel_quantize(port: FaceChannelDim, calibration: np.ndarray) -> OnnxFaceChannel:
    """Static post-training int8 quantisation of the port, calibrated on (N, 1, 64, 64) faces in [0, 1]."""
    if calibration.ndim != 4 or calibration.shape[1:] != (1, 64, 64) or len(calibration) == 0:
        raise ValueError(f"calibration faces must be (N, 1, 64, 64), got {calibration.shape}")
    try:
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError as exc:
        raise ImproperlyConfigured(f"FACECHANNEL_PRECISION=int8 needs onnxruntime.quantization ({exc}); run "
                                   "scripts/setup.sh to install the requirements") from exc
    faces = np.ascontiguousarray(calibration, dtype=np.float32)
    with tempfile.TemporaryDirectory(prefix="facechannel-int8-") as folder:
        exported, fp32, int8 = (Path(folder) / f"{name}.onnx" for name in ("exported", "fp32", "int8"))
        exported.write_bytes(facechannel_onnx(port))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # The quantiser's own pre-processing: shape inference and graph clean-up (it warns without it).
            quant_pre_process(str(exported), str(fp32), skip_symbolic_shape=True)
            quantize_static(
                str(fp32), str(int8), _Calibration(faces), quant_format=QuantFormat.QOperator, per_channel=True,
                reduce_range=weight_bits() == 7, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax, op_types_to_quantize=QUANTIZED_OPS)
        return OnnxFaceChannel(int8.read_bytes())


def calibration_faces(folder: str | None = None) -> tuple[np.ndarray, list[str]]:
    """Model inputs from a folder of images (settings.FACECHANNEL_INT8_CALIBRATION, else the sample faces
    in ASSETS_DIR/faces), and the file names used. Each image's chosen face is detected and cropped; an
    image in which no face is found is taken as an already-cropped face. Each face is also mirrored."""
    from inference.faces import face_detector_load, faces_detect, image_decode

    configured = folder if folder is not None else str(getattr(settings, "FACECHANNEL_INT8_CALIBRATION", "") or "")
    setting = "FACECHANNEL_INT8_CALIBRATION"
    path = Path(configured) if configured.strip() else Path(getattr(settings, "ASSETS_DIR", "")) / "faces"
    if not path.is_dir():
        raise ImproperlyConfigured(f"{setting}={configured or path} is not a folder of face images")
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    detector = face_detector_load()
    faces, used = [], []
    for file in files:
        try:
            image = image_decode(file.read_bytes())
            box = faces_detect(image, detector=detector, whole_frame_fallback=True).box
        except (OSError, ValueError) as exc:
            logger.warning("int8 calibration: skipping %s (%s)", file, exc)
            continue
        face = preprocess(image, box.as_list())
        faces += [face, face[:, :, ::-1]]
        used.append(file.name)
    if len(used) < MIN_CALIBRATION_FACES:
        raise ImproperlyConfigured(f"{setting}: {path} has {len(used)} usable images; int8 calibration needs at "
                                   f"least {MIN_CALIBRATION_FACES} faces")
    return np.ascontiguousarray(np.stack(faces), dtype=np.float32), used


def max_deviation(reference: nn.Module, candidate: nn.Module, faces: np.ndarray) -> float:
    with torch.inference_mode():
        inputs = torch.from_numpy(faces)
        return float((reference(inputs) - candidate(inputs)).abs().max())


@dataclass(frozen=True)
class Int8FaceChannel:
    model: nn.Module
    deviation: float  # max |int8 - fp32| over the calibration set, both outputs
    bound: float
    calibration: list[str]
    calibration_sha256: str
    weight_bits: int = 8

    def version(self, weights_sha256: str) -> str:
        """The model version recorded with each estimate: int8 results never mix with fp32 ones, nor
        results of 7-bit weights (CPUs without VNNI) with 8-bit ones."""
        bits = "" if self.weight_bits == 8 else f":w{self.weight_bits}"
        return hashlib.sha256(f"{weights_sha256}:int8:{self.calibration_sha256}{bits}".encode()).hexdigest()

    def details(self) -> dict[str, Any]:
        return {"precision": "int8", "int8_max_deviation": round(self.deviation, 6), "int8_bound": self.bound,
                "int8_calibration": self.calibration, "int8_calibration_sha256": self.calibration_sha256,
                "int8_weight_bits": self.weight_bits}


def max_deviation_bound() -> float:
    value = getattr(settings, "FACECHANNEL_INT8_MAX_DEVIATION", DEFAULT_MAX_DEVIATION)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 2:
        raise ImproperlyConfigured(f"FACECHANNEL_INT8_MAX_DEVIATION={value!r} must be a number in (0, 2]")
    return float(value)


def int8_build(port: FaceChannelDim, faces: np.ndarray, names: list[str], *, bound: float) -> Int8FaceChannel:
    """Quantise, then refuse (Int8RefusedError) when the calibration set shows a deviation above `bound`."""
    model = facechannel_quantize(port, faces)
    deviation = max_deviation(port, model, faces)
    if deviation > bound:
        raise Int8RefusedError(
            f"FACECHANNEL_PRECISION=int8 refused: on its {len(faces)} calibration faces the int8 model differs from "
            f"fp32 by up to {deviation:.4f} in valence/arousal, above the bound {bound} "
            f"(FACECHANNEL_INT8_MAX_DEVIATION). Use fp32, or calibrate on more faces (FACECHANNEL_INT8_CALIBRATION).")
    digest = hashlib.sha256(np.ascontiguousarray(faces).tobytes()).hexdigest()
    return Int8FaceChannel(model, deviation, bound, names, digest, weight_bits())


_cache: ProcessCache[Int8FaceChannel] = ProcessCache()  # by (weights sha256, calibration folder, bound)


def facechannel_precision() -> str:
    value = str(getattr(settings, "FACECHANNEL_PRECISION", "fp32") or "fp32").strip().lower()
    if value not in PRECISIONS:
        raise ImproperlyConfigured(f"FACECHANNEL_PRECISION={value!r} is not one of {', '.join(PRECISIONS)}")
    return value


def int8_load(port: FaceChannelDim, weights_sha256: str) -> Int8FaceChannel:
    """The int8 model for these weights and the configured calibration set, built once per process."""
    bound = max_deviation_bound()
    folder = str(getattr(settings, "FACECHANNEL_INT8_CALIBRATION", "") or "")
    key = (weights_sha256, folder, bound)

    def build() -> Int8FaceChannel:
        faces, names = calibration_faces()
        built = int8_build(port, faces, names, bound=bound)
        logger.info("FaceChannel int8: max |dVA| %.4f on %d calibration faces", built.deviation, len(faces))
        return built

    return _cache.get(key, build)
