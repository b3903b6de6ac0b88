"""Keras-layout FaceChannel Dim `.h5` files with seeded random weights, built in the test.

The 14 MB synthetic Keras fixture of ../shared/assets cannot be shipped (random weights do not compress),
so the tests that only need *a* file of the authors' layout write one: the model_config, layer and weight
names and shapes are those of that fixture (Keras 2.15 legacy HDF5, `tests/fixtures/
facechannel_dim_keras_layout.json`); the weights are drawn as the fixture's README describes (glorot-uniform
kernels, small normal biases, BatchNorm gamma U(0.5, 1.5), beta N(0, 0.2), moving mean N(0, 0.2), moving
variance U(0.3, 2)). Only the comparison with Keras's own outputs needs the fixture itself.
"""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from tests.conftest import REPO

LAYOUT = REPO / "tests" / "fixtures" / "facechannel_dim_keras_layout.json"


def _weight(rng: np.random.Generator, name: str, shape: list[int]) -> np.ndarray:
    kind = name.rsplit("/", 1)[-1].split(":", 1)[0]
    if kind == "kernel":
        receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
        fan_in, fan_out = shape[-2] * receptive, shape[-1] * receptive
        limit = np.sqrt(6 / (fan_in + fan_out))
        return rng.uniform(-limit, limit, shape)
    return {"bias": lambda: rng.normal(0, 0.05, shape), "gamma": lambda: rng.uniform(0.5, 1.5, shape),
            "beta": lambda: rng.normal(0, 0.2, shape), "moving_mean": lambda: rng.normal(0, 0.2, shape),
            "moving_variance": lambda: rng.uniform(0.3, 2.0, shape)}[kind]()


def facechannel_h5_write(path: Path, *, seed: int = 0) -> Path:
    layout = json.loads(LAYOUT.read_text())
    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as handle:
        for key, value in layout["attrs"].items():
            handle.attrs[key] = value
        weights = handle.create_group("model_weights")
        for key, value in layout["model_weights_attrs"].items():
            weights.attrs[key] = [v.encode() for v in value] if isinstance(value, list) else value
        for layer, spec in layout["layers"].items():
            group = weights.create_group(layer)
            group.attrs["weight_names"] = [name.encode() for name in spec["weight_names"]]
            for name in spec["weight_names"]:
                group.create_dataset(name, data=_weight(rng, name, spec["shapes"][name]).astype(np.float32))
    return path
