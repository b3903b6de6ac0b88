"""Opt-in int8 FaceChannel (FACECHANNEL_PRECISION=int8): PyTorch's static post-training quantisation.

fp32 stays the default and the one that matches the authors' Keras model. int8 is built from the fp32
port with PyTorch's own eager-mode tooling on the x86 (fbgemm) backend:
- conv + BatchNorm + ReLU fused (BN folded), per-channel symmetric int8 weights, uint8 activations
  with histogram (MSE-optimal range) observers over the full 0..255 range on CPUs with VNNI, 0..127 on
  the others (`activation_bits`);
- the shunting inhibition relu(conv10) / (0.5 + relu(conv10_inhibition)) is computed in float: a
  quotient of two quantised tensors amplifies their rounding where the denominator is small;
- the 200-unit dense layer and the two one-unit tanh heads stay float (0.1 % of the arithmetic; an int8
  dense layer alone took the synthetic fixture to 0.021 from Keras with 7-bit activations, 0.016 in float).
Calibration runs the fp32 and int8 models on faces the user supplies (FACECHANNEL_INT8_CALIBRATION, a
folder of images) or the sample faces, each also mirrored. If the largest |int8 - fp32| over the
calibration set exceeds FACECHANNEL_INT8_MAX_DEVIATION (default 0.02 on [-1, 1]) the model is refused:
a wrong-but-fast model is worse than a slow one.
"""
from __future__ import annotations

import copy
import hashlib
import logging
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
from inference.va.facechannel import FaceChannelDim, preprocess

logger = logging.getLogger(__name__)

PRECISIONS = ("fp32", "int8")
DEFAULT_MAX_DEVIATION = 0.02
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
MIN_CALIBRATION_FACES = 4


class Int8RefusedError(ImproperlyConfigured):
    """The int8 model deviates from fp32 by more than the bound on its own calibration set."""


class _Int8FaceChannel(nn.Module):
    """The port's network rearranged into quantisable modules (same weights, same arithmetic in fp32)."""

    def __init__(self, port: FaceChannelDim) -> None:
        super().__init__()
        from torch.ao.quantization import DeQuantStub, QuantStub

        layers: list[nn.Module] = []
        self.fuse_groups: list[list[str]] = []
        for i, (conv, norm) in enumerate(zip(port.convs, port.norms, strict=True)):
            start = len(layers)
            layers += [copy.deepcopy(conv), copy.deepcopy(norm), nn.ReLU()]
            self.fuse_groups.append([f"body.{start}", f"body.{start + 1}", f"body.{start + 2}"])
            if i in port.pool_after:
                layers.append(nn.MaxPool2d(2))
        self.body = nn.Sequential(*layers)
        self.excite = nn.Sequential(copy.deepcopy(port.conv10), nn.ReLU())
        self.inhibit = nn.Sequential(copy.deepcopy(port.conv10_inhibition), nn.ReLU())
        self.fuse_groups += [["excite.0", "excite.1"], ["inhibit.0", "inhibit.1"]]
        self.decay = port.inhibition_decay
        self.pool = nn.MaxPool2d(2)
        self.dense = nn.Sequential(copy.deepcopy(port.dense), nn.ReLU())
        self.arousal, self.valence = copy.deepcopy(port.arousal), copy.deepcopy(port.valence)
        self.quant_in = QuantStub()
        self.dequant_excite, self.dequant_inhibit = DeQuantStub(), DeQuantStub()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.body(self.quant_in(x))
        excite, inhibit = self.dequant_excite(self.excite(x)), self.dequant_inhibit(self.inhibit(x))
        hidden = torch.flatten(self.pool(excite / (self.decay + inhibit)), 1)
        hidden = self.dense(hidden)
        return torch.cat([torch.tanh(self.arousal(hidden)), torch.tanh(self.valence(hidden))], dim=1)


def activation_bits() -> int:
    """8 on CPUs with VNNI; 7 on the others, where fbgemm's u8 x s8 products go through 16-bit saturating
    adds (vpmaddubsw) and full-range activations overflow them (measured on an AVX2-only AMD EPYC: max |dVA|
    0.032 with 8 bits, refused; PyTorch's x86 default qconfig makes the same choice)."""
    vnni = getattr(torch.cpu, "_is_vnni_supported", None)
    return 8 if vnni is not None and vnni() else 7


def _qconfig(bits: int) -> Any:
    from torch.ao.quantization import HistogramObserver, PerChannelMinMaxObserver, QConfig

    # With VNNI the full 8 bits halve the rounding error; the deviation check below catches anything else.
    return QConfig(
        activation=HistogramObserver.with_args(dtype=torch.quint8, reduce_range=bits == 7),
        weight=PerChannelMinMaxObserver.with_args(dtype=torch.qint8, qscheme=torch.per_channel_symmetric))


def facechannel_quantize(port: FaceChannelDim, calibration: np.ndarray) -> nn.Module:
    """Static post-training int8 quantisation of the port, calibrated on (N, 1, 64, 64) faces in [0, 1]."""
    from torch.ao.quantization import convert, fuse_modules, prepare

    if calibration.ndim != 4 or calibration.shape[1:] != (1, 64, 64) or len(calibration) == 0:
        raise ValueError(f"calibration faces must be (N, 1, 64, 64), got {calibration.shape}")
    if "x86" not in torch.backends.quantized.supported_engines:
        raise ImproperlyConfigured("FACECHANNEL_PRECISION=int8 needs PyTorch's x86 (fbgemm) quantized engine, "
                                   f"which this build lacks ({torch.backends.quantized.supported_engines})")
    torch.backends.quantized.engine = "x86"
    model = _Int8FaceChannel(port).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization announces its move to torchao
        model = fuse_modules(model, model.fuse_groups)
        model.qconfig = _qconfig(activation_bits())
        for head in (model.dense, model.arousal, model.valence):
            head.qconfig = None
        prepared = prepare(model)
        with torch.inference_mode():
            prepared(torch.from_numpy(np.ascontiguousarray(calibration, dtype=np.float32)))
        return convert(prepared).eval()


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
    activation_bits: int = 8

    def version(self, weights_sha256: str) -> str:
        """The model version recorded with each estimate: int8 results never mix with fp32 ones, nor
        results of 7-bit activations (CPUs without VNNI) with 8-bit ones."""
        bits = "" if self.activation_bits == 8 else f":a{self.activation_bits}"
        return hashlib.sha256(f"{weights_sha256}:int8:{self.calibration_sha256}{bits}".encode()).hexdigest()

    def details(self) -> dict[str, Any]:
        return {"precision": "int8", "int8_max_deviation": round(self.deviation, 6), "int8_bound": self.bound,
                "int8_calibration": self.calibration, "int8_calibration_sha256": self.calibration_sha256,
                "int8_activation_bits": self.activation_bits}


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
    return Int8FaceChannel(model, deviation, bound, names, digest, activation_bits())


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
