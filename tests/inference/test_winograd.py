"""Winograd F(4x4, 3x3) FaceChannel (inference/va/winograd.py): same outputs as the port, fused layers, threads,
the FACECHANNEL_FP32_KERNEL setting and the fallback to ONNX Runtime."""
from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from django.core.exceptions import ImproperlyConfigured

from inference.va import facechannel, winograd
from tests.conftest import FACES
from tests.inference.facechannel_files import facechannel_h5_write

BOUND = 1e-4  # the self-check's bound; measured ~1e-6


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    """A file of the authors' Keras layout with seeded weights (tests/inference/facechannel_files.py)."""
    return facechannel_h5_write(tmp_path_factory.mktemp("winograd") / "facechannel_dim_seeded.h5", seed=3)


@pytest.fixture(scope="module")
def port(weights) -> facechannel.FaceChannelDim:
    return facechannel.load(str(weights))


@pytest.fixture(scope="module")
def model(port) -> winograd.WinogradFaceChannel:
    return winograd.WinogradFaceChannel.from_port(port, threads=2)


@pytest.fixture(scope="module")
def faces() -> np.ndarray:
    """The shipped portraits, whole frame, and random inputs: (N, 1, 64, 64) in [0, 1]."""
    shipped = [facechannel.preprocess(image, [0, 0, image.shape[1], image.shape[0]])
               for image in (cv2.imread(str(path)) for path in sorted(FACES.glob("*.jp*g")))]
    rand = np.random.default_rng(1).random((6, 1, 64, 64), dtype=np.float32)
    return np.concatenate([np.stack(shipped), rand])


def _run(module: torch.nn.Module, inputs: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return module(torch.from_numpy(np.ascontiguousarray(inputs))).numpy()


def test_it_matches_the_port_at_every_batch_size(port, model, faces) -> None:
    reference = _run(port, faces)
    assert np.abs(reference).max() > 0.05  # not a degenerate network whose outputs all agree anyway
    assert np.abs(_run(model, faces) - reference).max() < BOUND
    for size in (1, 3, 7):  # one image (one worker), odd sizes (uneven split between the workers)
        assert np.abs(_run(model, faces[:size]) - reference[:size]).max() < BOUND
    assert np.abs(_run(model, np.concatenate([faces] * 3)) - np.concatenate([reference] * 3)).max() < BOUND
    assert _run(model, faces[:0]).shape == (0, 2)
    with pytest.raises(ValueError, match="expected"):
        _run(model, faces[:, :, :32])


def _layer_run(layer: winograd._Layer, x: np.ndarray) -> np.ndarray:
    """One Winograd layer on NHWC input x (N, S, S, C): padded, transformed, multiplied, transformed back."""
    n, size = len(x), x.shape[1]
    padded = np.zeros((n, size + 2, size + 2, x.shape[3]), np.float32)
    padded[:, 1:-1, 1:-1] = x
    kernels = winograd.kernels()
    rows = n * layer.tiles
    v = np.empty((36, rows, layer.channels), np.float32)
    kernels["input_transform"](padded, v, np.empty((6, 6, layer.channels), np.float32))
    m = np.matmul(v, layer.u)
    y = np.zeros(layer.out_shape(n), np.float32)
    kernels["output_transform"](m, layer.bias, y, np.empty((6, 4, layer.filters), np.float32),
                                np.empty((4, 4, layer.filters), np.float32), layer.mode, np.float32(0.5))
    return y if layer.mode == winograd.SHUNT_POOL else y[:, 1:-1, 1:-1]


@pytest.mark.parametrize("mode", [winograd.PLAIN, winograd.POOL, winograd.SHUNT_POOL])
def test_each_fused_layer_matches_torch(mode) -> None:
    """Convolution + bias + ReLU, with the 2x2 max pooling, and the shunting inhibition with its pooling."""
    rng = np.random.default_rng(mode)
    n, size, channels, filters = 2, 8, 16, 24
    x = rng.standard_normal((n, channels, size, size)).astype(np.float32)
    weight = rng.standard_normal((2 * filters if mode == winograd.SHUNT_POOL else filters, channels, 3, 3)) * 0.2
    bias = rng.standard_normal(len(weight)) * 0.1
    out = torch.nn.functional.conv2d(torch.from_numpy(x).double(), torch.from_numpy(weight), torch.from_numpy(bias),
                                     padding=1)
    if mode == winograd.SHUNT_POOL:
        out = torch.relu(out[:, :filters]) / (0.5 + torch.relu(out[:, filters:]))
    else:
        out = torch.relu(out)
    if mode != winograd.PLAIN:
        out = torch.nn.functional.max_pool2d(out, 2)
    expected = out.permute(0, 2, 3, 1).numpy()
    got = _layer_run(winograd._Layer(weight, bias, size, mode), np.ascontiguousarray(x.transpose(0, 2, 3, 1)))
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() < 1e-4 * max(1.0, np.abs(expected).max())


def test_concurrent_calls_from_several_threads_are_correct(port, model, faces) -> None:
    reference = _run(port, faces)
    errors: list[str] = []

    def call(offset: int) -> None:
        for round_ in range(5):
            pick = [(offset + round_ + i) % len(faces) for i in range(1 + (offset + round_) % 9)]
            got = _run(model, faces[pick])
            if np.abs(got - reference[pick]).max() >= BOUND:
                errors.append(f"thread {offset} round {round_}")

    threads = [threading.Thread(target=call, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors


def test_auto_uses_winograd_and_onnx_picks_onnx_runtime(settings, port, faces) -> None:
    reference = _run(port, faces)
    auto = facechannel.facechannel_optimize(port)
    assert isinstance(auto, winograd.WinogradFaceChannel) and auto.deviation < BOUND
    assert np.abs(_run(auto, faces) - reference).max() < BOUND
    settings.FACECHANNEL_FP32_KERNEL = "onnx"
    assert isinstance(facechannel.facechannel_optimize(port), facechannel.OnnxFaceChannel)
    settings.FACECHANNEL_FP32_KERNEL = " Winograd "
    assert isinstance(facechannel.facechannel_optimize(port), winograd.WinogradFaceChannel)


def test_a_bad_kernel_value_names_the_setting(settings, weights) -> None:
    settings.FACECHANNEL_FP32_KERNEL = "cuda"
    with pytest.raises(ImproperlyConfigured, match="FACECHANNEL_FP32_KERNEL='cuda' is not one of auto, winograd, onnx"):
        facechannel.facechannel_load(str(weights))


def test_without_numba_auto_falls_back_to_onnx_runtime_and_winograd_refuses(settings, port, faces, monkeypatch,
                                                                           caplog) -> None:
    monkeypatch.setitem(sys.modules, "numba", None)  # `import numba` raises ImportError
    with caplog.at_level(logging.WARNING, logger="inference.va.facechannel"):
        model = facechannel.facechannel_optimize(port)
    assert isinstance(model, facechannel.OnnxFaceChannel)
    assert "Winograd kernel unavailable" in caplog.text and "numba cannot be imported" in caplog.text
    assert np.abs(_run(model, faces) - _run(port, faces)).max() < 1e-5
    settings.FACECHANNEL_FP32_KERNEL = "winograd"
    with pytest.raises(ImproperlyConfigured, match="FACECHANNEL_FP32_KERNEL=winograd.*numba cannot be imported"):
        facechannel.facechannel_optimize(port)


def test_a_failed_self_check_falls_back_to_onnx_runtime(port, monkeypatch, caplog) -> None:
    real = winograd.winograd_weights
    monkeypatch.setattr(winograd, "winograd_weights", lambda weight: real(weight) * np.float32(1.01))  # 1 % off
    with caplog.at_level(logging.WARNING, logger="inference.va.facechannel"):
        model = facechannel.facechannel_optimize(port)
    assert isinstance(model, facechannel.OnnxFaceChannel)
    assert "self-check differs from the port" in caplog.text
