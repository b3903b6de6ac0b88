"""FaceChannelV1 "Dim" (Barros et al. 2020) in PyTorch, with a loader for the authors' Keras `.h5`.

The network (from the original `getDimensionalModel`, channels_first, 64x64 gray input in [0, 1]):
conv 64,64 | pool | 128,128 | pool | 128,128,128 | pool | 256,256 | shunting inhibition
relu(conv10) / (0.5 + relu(conv10_inhibition)) | pool | flatten | dense 200 relu | tanh heads.
Each of the first nine convolutions is followed by BatchNorm and ReLU. Outputs are (arousal, valence),
the original's order.

The loader reads the file with h5py (no TensorFlow): layers are found by name (Vision_conv1..8,
conv9, conv10, conv10_inhibition, denseLayer, arousal_output, valence_output) and each conv's
BatchNorm by following the graph in `model_config`, because BatchNorm names differ between Keras
versions (batch_normalization_1.. in Keras 2.2, batch_normalization.. in 2.15). BatchNorm epsilon and
the Flatten data_format come from the file.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import h5py
import numpy as np
import torch
from torch import nn

from inference.loading import ProcessCache, setting_file

logger = logging.getLogger(__name__)

# Git blob id of TrainedNetworks/DimensionalFaceChannel.h5 in pablovin/FaceChannel (the only version
# ever committed); the upstream file cannot be downloaded here, so a user's copy is checked against it.
OFFICIAL_GIT_BLOB = "952d8bc8a22d553e56ec15f6361053ebd113223c"
INPUT_SIZE = 64
INHIBITION_DECAY = 0.5  # the original's shunting-inhibition decay; the Lambda's bytecode is not portable
CONV_LAYERS = ("Vision_conv1", "Vision_conv2", "Vision_conv3", "Vision_conv4", "Vision_conv5", "Vision_conv6",
               "Vision_conv7", "Vision_conv8", "conv9")
CONV_FILTERS = (64, 64, 128, 128, 128, 128, 128, 256, 256)
POOL_AFTER = (1, 3, 6)  # indices into CONV_LAYERS followed by 2x2 max pooling
HEADS = ("arousal_output", "valence_output")


class FaceChannelDim(nn.Module):
    """forward: (N, 1, 64, 64) float32 in [0, 1] -> (N, 2) = (arousal, valence), each in [-1, 1]."""

    def __init__(self, bn_eps: float = 1e-3, inhibition_decay: float = INHIBITION_DECAY) -> None:
        super().__init__()
        channels = (1, *CONV_FILTERS)
        self.convs = nn.ModuleList(nn.Conv2d(channels[i], channels[i + 1], 3, padding=1)
                                   for i in range(len(CONV_FILTERS)))
        self.norms = nn.ModuleList(nn.BatchNorm2d(c, eps=bn_eps) for c in CONV_FILTERS)
        self.conv10 = nn.Conv2d(256, 256, 3, padding=1)
        self.conv10_inhibition = nn.Conv2d(256, 256, 3, padding=1)
        self.inhibition_decay = inhibition_decay
        self.dense = nn.Linear(256 * 4 * 4, 200)
        self.arousal = nn.Linear(200, 1)
        self.valence = nn.Linear(200, 1)
        self.pool = nn.MaxPool2d(2)
        self.pool_after = list(POOL_AFTER)  # an attribute, so torch.jit.script can read it

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The flattened 4096-d input of the dense layer, in PyTorch (C, H, W) order."""
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms)):  # noqa: B905 (TorchScript has no strict)
            x = torch.relu(norm(conv(x)))
            if i in self.pool_after:
                x = self.pool(x)
        x = torch.relu(self.conv10(x)) / (self.inhibition_decay + torch.relu(self.conv10_inhibition(x)))
        return torch.flatten(self.pool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = torch.relu(self.dense(self.features(x)))
        return torch.cat([torch.tanh(self.arousal(hidden)), torch.tanh(self.valence(hidden))], dim=1)


@dataclass(frozen=True)
class WeightsInfo:
    path: str
    sha256: str
    git_blob: str

    @property
    def is_official(self) -> bool:
        return self.git_blob == OFFICIAL_GIT_BLOB

    def details(self) -> dict[str, Any]:
        return {"weights_path": self.path, "weights_git_blob": self.git_blob,
                "weights_official_blob_match": self.is_official}


def weights_info(path: str) -> WeightsInfo:
    """sha256 (recorded as VAEstimate.model_sha256) and git blob id (compared with the upstream file)."""
    data = Path(path).read_bytes()
    git_blob = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
    return WeightsInfo(path=path, sha256=hashlib.sha256(data).hexdigest(), git_blob=git_blob)


def _reject(path: str, why: str) -> ValueError:
    return ValueError(f"{path} is not a FaceChannelV1 dimensional (arousal/valence) Keras model: {why}")


def _layer_weights(group: h5py.Group, layer: str) -> dict[str, np.ndarray]:
    """{'kernel': ..., 'bias': ..., 'gamma': ...} of one layer, whatever the Keras version's weight names."""
    layer_group = group[layer]
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in layer_group.attrs.get("weight_names", [])]
    if not names:  # some writers omit the attribute; walk the datasets instead
        layer_group.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
    out = {}
    for name in names:
        short = name.rsplit("/", 1)[-1].split(":", 1)[0]
        out[short] = np.asarray(layer_group[name], dtype=np.float32)
    return out


def _inbound(layer: dict[str, Any]) -> list[str]:
    """Names of the layers feeding `layer` (Keras 2.x `inbound_nodes` format, both old and new)."""
    names = []
    for node in layer.get("inbound_nodes") or []:
        if isinstance(node, dict):  # Keras 3: {"args": [...keras tensor history...]}
            names.extend(_keras3_sources(node.get("args", [])))
            continue
        for entry in node:
            names.append(entry[0])
    return names


def _keras3_sources(value: Any) -> list[str]:
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            return [value["config"]["keras_history"][0]]
        return [n for v in value.values() for n in _keras3_sources(v)]
    if isinstance(value, list):
        return [n for v in value for n in _keras3_sources(v)]
    return []


def _consumers(layers: list[dict[str, Any]], name: str, class_name: str) -> list[dict[str, Any]]:
    return [layer for layer in layers if layer["class_name"] == class_name and name in _inbound(layer)]


def load(path: str, *, flatten_data_format: str | None = None) -> FaceChannelDim:
    """Build the PyTorch model from a Keras full-model `.h5` (ValueError naming the path if it is not one).

    `flatten_data_format` overrides the file's Flatten setting; it exists to show (in a test) that the
    wrong flatten order is caught, and for files written by Keras versions that omitted it.
    """
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise ValueError(f"{path} cannot be opened as an HDF5 file: {exc}") from exc
    with handle:
        raw_config = handle.attrs.get("model_config")
        if raw_config is None:
            raise _reject(path, "it has no model_config (a weights-only file, or not Keras); save the full model")
        config = json.loads(raw_config.decode() if isinstance(raw_config, bytes) else raw_config)
        layers = config.get("config", {}).get("layers", [])
        by_name = {layer.get("config", {}).get("name") or layer.get("name"): layer for layer in layers}
        missing = [n for n in (*CONV_LAYERS, "conv10", "conv10_inhibition", "denseLayer", *HEADS) if n not in by_name]
        if missing:
            raise _reject(path, f"layers {', '.join(missing)} are missing")
        for name, units, activation in (("denseLayer", 200, "relu"), *((head, 1, "tanh") for head in HEADS)):
            layer_config = by_name[name]["config"]
            if layer_config.get("units") != units or layer_config.get("activation") != activation:
                raise _reject(path, f"{name} has {layer_config.get('units')} {layer_config.get('activation')} "
                                    f"units, expected {units} {activation} (arousal_output and valence_output heads)")
        for name in ("conv10", "conv10_inhibition"):
            if by_name[name]["config"].get("activation") != "relu":
                raise _reject(path, f"{name} is not a relu convolution (shunting inhibition expects relu)")
        weights = handle["model_weights"] if "model_weights" in handle else handle

        norms: list[dict[str, np.ndarray]] = []
        eps_values = set()
        for conv_name, filters in zip(CONV_LAYERS, CONV_FILTERS, strict=True):
            conv_config = by_name[conv_name]["config"]
            if conv_config.get("filters") != filters or list(conv_config.get("kernel_size", [])) != [3, 3]:
                raise _reject(path, f"{conv_name} has {conv_config.get('filters')} filters of "
                                    f"{conv_config.get('kernel_size')}, expected {filters} of 3x3")
            if conv_config.get("data_format", "channels_first") != "channels_first":
                raise _reject(path, f"{conv_name} is {conv_config.get('data_format')}; FaceChannel is channels_first")
            bn_layers = _consumers(layers, conv_name, "BatchNormalization")
            if len(bn_layers) != 1:
                raise _reject(path, f"{conv_name} is followed by {len(bn_layers)} BatchNormalization layers, expected 1")
            bn_config = bn_layers[0]["config"]
            eps_values.add(float(bn_config.get("epsilon", 1e-3)))
            bn = _layer_weights(weights, bn_config["name"])
            bn.setdefault("gamma", np.ones(filters, np.float32))  # scale=False / center=False layers
            bn.setdefault("beta", np.zeros(filters, np.float32))
            norms.append(bn)
        if len(eps_values) != 1:
            raise _reject(path, f"BatchNormalization layers use different epsilons {sorted(eps_values)}")

        flatten = [layer for layer in layers if layer["class_name"] == "Flatten"]
        if len(flatten) != 1:
            raise _reject(path, f"expected one Flatten layer, found {len(flatten)}")
        # Keras' channels_first Flatten transposes to (H, W, C) before flattening; a Flatten without
        # the option (Keras < 2.1) flattened the tensor as laid out, (C, H, W).
        data_format = flatten_data_format or flatten[0]["config"].get("data_format") or "channels_last"

        model = FaceChannelDim(bn_eps=eps_values.pop())
        with torch.no_grad():
            for i, conv_name in enumerate(CONV_LAYERS):
                _copy_conv(model.convs[i], _layer_weights(weights, conv_name), path, conv_name)
                for attr, key in (("weight", "gamma"), ("bias", "beta"), ("running_mean", "moving_mean"),
                                  ("running_var", "moving_variance")):
                    _copy(getattr(model.norms[i], attr), norms[i].get(key), path, f"{conv_name} BatchNorm {key}")
            _copy_conv(model.conv10, _layer_weights(weights, "conv10"), path, "conv10")
            _copy_conv(model.conv10_inhibition, _layer_weights(weights, "conv10_inhibition"), path,
                       "conv10_inhibition")
            dense = _layer_weights(weights, "denseLayer")
            kernel = dense.get("kernel")
            if kernel is None or kernel.shape != (4096, 200):
                raise _reject(path, f"denseLayer kernel is {None if kernel is None else kernel.shape}, expected (4096, 200)")
            if data_format == "channels_first":
                # Rows are in (H, W, C) order; reorder them to the (C, H, W) order of torch.flatten.
                kernel = kernel.reshape(4, 4, 256, 200).transpose(2, 0, 1, 3).reshape(4096, 200)
            _copy(model.dense.weight, kernel.T, path, "denseLayer kernel")
            _copy(model.dense.bias, dense.get("bias"), path, "denseLayer bias")
            for head, layer in zip(HEADS, (model.arousal, model.valence), strict=True):
                head_weights = _layer_weights(weights, head)
                kernel = head_weights.get("kernel")
                _copy(layer.weight, None if kernel is None else kernel.T, path, f"{head} kernel")
                _copy(layer.bias, head_weights.get("bias"), path, f"{head} bias")
    return model.eval()


def _copy_conv(conv: nn.Conv2d, found: dict[str, np.ndarray], path: str, name: str) -> None:
    kernel = found.get("kernel")
    # Keras stores (kh, kw, in, out); torch wants (out, in, kh, kw).
    _copy(conv.weight, None if kernel is None else kernel.transpose(3, 2, 0, 1), path, f"{name} kernel")
    _copy(conv.bias, found.get("bias"), path, f"{name} bias")


def _copy(target: torch.Tensor, value: np.ndarray | None, path: str, what: str) -> None:
    if value is None:
        raise _reject(path, f"{what} is missing")
    if tuple(value.shape) != tuple(target.shape):
        raise _reject(path, f"{what} has shape {tuple(value.shape)}, expected {tuple(target.shape)}")
    target.copy_(torch.from_numpy(np.ascontiguousarray(value)))


def preprocess(image_bgr: np.ndarray, box: list[int]) -> np.ndarray:
    """The original FaceChannel preprocessing of one face: crop, BGR->gray, cv2.resize to 64x64, /255.

    Returns (1, 64, 64) float32. `box` is [x, y, w, h], already clipped to the image.
    """
    x, y, w, h = box
    face = image_bgr[y:y + h, x:x + w]
    if face.size == 0:
        raise ValueError(f"face box {box} is empty")
    gray = cv2.cvtColor(face, cv2.COLOR_BGR2GRAY) if face.ndim == 3 else face
    resized = cv2.resize(gray, (INPUT_SIZE, INPUT_SIZE)).astype(np.float32)
    return (resized / 255.0)[None]


def facechannel_onnx(model: FaceChannelDim) -> bytes:
    """The port as an ONNX graph (input "faces" (N, 1, 64, 64), output "arousal_valence" (N, 2))."""
    graph = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        # The TorchScript-based exporter is deprecated in favour of the dynamo one, which needs onnxscript
        # and seconds of tracing per worker; this one exports in well under a second.
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), torch.zeros(1, 1, INPUT_SIZE, INPUT_SIZE), graph, input_names=["faces"],
                          output_names=["arousal_valence"], dynamic_axes={"faces": {0: "n"}}, opset_version=17,
                          dynamo=False)
    return graph.getvalue()


class OnnxFaceChannel(nn.Module):
    """An ONNX graph of the network run by ONNX Runtime, called like the port (torch tensors in and out).

    fp32: the port exported (`facechannel_onnx`; agrees with it to ~1e-6, tested against the Keras fixture)
    and faster on the CPU at batch 32; int8: the quantised graph inference/va/quantize.py builds."""

    def __init__(self, graph: bytes, *, threads: int | None = None) -> None:
        super().__init__()
        from inference.runtime import ort_session, ort_version

        self.graph = graph
        self.session = ort_session(graph, threads=threads or torch.get_num_threads(), what="FaceChannel")
        self.runtime = f"onnxruntime {ort_version()}"

    @classmethod
    def from_port(cls, model: FaceChannelDim, *, threads: int | None = None) -> OnnxFaceChannel:
        return cls(facechannel_onnx(model), threads=threads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        faces = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(self.session.run(None, {"faces": faces})[0])


FP32_KERNELS = ("auto", "winograd", "onnx")


def facechannel_fp32_kernel() -> str:
    """settings.FACECHANNEL_FP32_KERNEL: auto (Winograd where it passes its self-check, else ONNX Runtime),
    winograd (required: ImproperlyConfigured if unavailable) or onnx."""
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    value = str(getattr(settings, "FACECHANNEL_FP32_KERNEL", "auto") or "auto").strip().lower()
    if value not in FP32_KERNELS:
        raise ImproperlyConfigured(f"FACECHANNEL_FP32_KERNEL={value!r} is not one of {', '.join(FP32_KERNELS)}")
    return value


def facechannel_optimize(model: FaceChannelDim, *, kernel: str | None = None) -> torch.nn.Module:
    """The same network for inference. fp32 kernel (`kernel`, default settings.FACECHANNEL_FP32_KERNEL):
    - winograd / auto: Winograd F(4x4, 3x3) convolutions (inference/va/winograd.py: 1.4-1.8x ONNX Runtime at
      batch 32, ~1e-6 from the port), checked against the port at load; under auto, when numba is missing
      or the check fails, the reason is logged and ONNX Runtime is used;
    - onnx: exported to ONNX and run by ONNX Runtime (`OnnxFaceChannel`). Where that is unavailable,
      TorchScript, frozen, with BatchNorm folded into the convolutions and oneDNN's blocked layout (also
      ~1e-6 from the port, slower); failing that, the eager port."""
    kernel = kernel or facechannel_fp32_kernel()
    if kernel != "onnx":
        from inference.va.winograd import winograd_build

        try:
            return winograd_build(model)
        except Exception as exc:  # noqa: BLE001 - numba missing, a failed self-check, a runtime error
            if kernel == "winograd":
                from django.core.exceptions import ImproperlyConfigured

                raise ImproperlyConfigured(f"FACECHANNEL_FP32_KERNEL=winograd, but the Winograd model is unavailable: "
                                           f"{exc}. Use auto (falls back to ONNX Runtime) or onnx.") from exc
            logger.warning("FaceChannel: Winograd kernel unavailable (%s); using ONNX Runtime", exc)
    try:
        return OnnxFaceChannel.from_port(model)
    except Exception as exc:  # noqa: BLE001 - any export/runtime failure only costs speed
        logger.warning("FaceChannel: ONNX Runtime unavailable (%s); using TorchScript", exc)
    return facechannel_torchscript(model)


def facechannel_torchscript(model: FaceChannelDim) -> torch.nn.Module:
    """The port as frozen TorchScript for oneDNN (the previous inference model; the benchmark compares it),
    or the eager port where the build lacks oneDNN."""
    try:
        # TorchScript is deprecated in favour of torch.compile, which needs a C++ toolchain and minutes
        # of compilation per worker process; this path is still supported and compiles in ~1 s.
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return torch.jit.optimize_for_inference(torch.jit.script(model.eval()))
    except Exception as exc:  # noqa: BLE001 - any TorchScript/oneDNN failure only costs speed
        logger.warning("FaceChannel: TorchScript optimisation unavailable (%s); using the eager model", exc)
        return model


@dataclass(frozen=True)
class LoadedFaceChannel:
    model: torch.nn.Module  # what to run: facechannel_optimize(port), or the int8 model when opted in
    port: FaceChannelDim  # the eager PyTorch port, as `load` built it
    info: WeightsInfo
    precision: str = "fp32"
    version: str = ""  # recorded as VAEstimate.model_sha256: the weights' sha256 for fp32, a derived one for int8
    precision_details: dict[str, Any] | None = None


_cache: ProcessCache[LoadedFaceChannel] = ProcessCache()  # fp32 only, by resolved weights path
FACECHANNEL_HINT = ("the facechannel VA source needs the authors' DimensionalFaceChannel.h5 (git blob 952d8bc8…), "
                    "which cannot be downloaded here")


def facechannel_weights_path(path: str | None = None) -> Path:
    """settings.FACECHANNEL_WEIGHTS (or `path`), checked to name a file; no weights are read."""
    return setting_file("FACECHANNEL_WEIGHTS", hint=FACECHANNEL_HINT, value=path)


def facechannel_load(path: str | None = None, *, precision: str | None = None) -> LoadedFaceChannel:
    """The model for settings.FACECHANNEL_WEIGHTS (or `path`) at settings.FACECHANNEL_PRECISION (or
    `precision`), loaded once per process, file and precision. int8 is built and checked by
    inference/va/quantize.py (it may refuse with ImproperlyConfigured)."""
    from inference.va.quantize import facechannel_precision, int8_load

    precision = precision or facechannel_precision()
    key = str(facechannel_weights_path(path).resolve())

    def fp32_load() -> LoadedFaceChannel:
        info = weights_info(key)
        if not info.is_official:
            logger.warning("FaceChannel weights %s have git blob %s, not the published %s: results are not "
                           "the paper's model", key, info.git_blob, OFFICIAL_GIT_BLOB)
        port = load(key)
        return LoadedFaceChannel(model=facechannel_optimize(port), port=port, info=info, version=info.sha256,
                                 precision_details={"precision": "fp32"})

    fp32 = _cache.get(key, fp32_load)
    if precision == "fp32":
        return fp32
    # Outside the lock: building int8 calibrates for seconds; int8_load caches it per weights, calibration set
    # and bound.
    int8 = int8_load(fp32.port, fp32.info.sha256)
    return LoadedFaceChannel(model=int8.model, port=fp32.port, info=fp32.info, precision=precision,
                             version=int8.version(fp32.info.sha256), precision_details=int8.details())


def facechannel_predict(model: torch.nn.Module, faces: np.ndarray, *, batch_size: int = 32) -> np.ndarray:
    """(N, 1, 64, 64) float32 -> (N, 2) float32 (arousal, valence), in batches."""
    outputs = []
    with torch.inference_mode():
        for start in range(0, len(faces), batch_size):
            outputs.append(model(torch.from_numpy(np.ascontiguousarray(faces[start:start + batch_size]))).numpy())
    return np.concatenate(outputs) if outputs else np.zeros((0, 2), np.float32)
