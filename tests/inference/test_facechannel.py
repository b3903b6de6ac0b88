"""FaceChannel Dim port: reproduces the Keras outputs of the synthetic-weights fixture and rejects other models."""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
import torch
from django.core.exceptions import ImproperlyConfigured

from inference.va import facechannel
from inference.va.winograd import WinogradFaceChannel
from tests.conftest import FACES, unshipped_asset
from tests.inference.facechannel_files import facechannel_h5_write

FIXTURE_WHY = "14 MB of random Keras weights, 13 MB compressed: too large to ship"
# The Keras fixture's input order, with the Haar boxes (faces/README.md) the inputs were cropped with; the
# first five are the Pexels photos, found only in ../shared/assets.
FIXTURE_FACES = [
    ("angry.jpg", [136, 510, 939, 939]), ("happy-baby.jpeg", [461, 127, 295, 295]),
    ("neutral.jpeg", [241, 332, 520, 520]), ("sad-baby.jpeg", [337, 48, 761, 761]),
    ("surprised.jpeg", [624, 251, 420, 420]), ("astronaut.png", [174, 65, 99, 99]),
    ("obama.jpg", [354, 101, 280, 280]), ("biden.jpg", [424, 206, 328, 328]),
    ("obama-speech.jpg", [138, 236, 344, 344]),
]
SHIPPED_FACES = FIXTURE_FACES[5:]


@pytest.fixture(scope="module")
def fixture_dir() -> Path:
    return unshipped_asset("facechannel/synthetic-test-fixture", FIXTURE_WHY)


@pytest.fixture(scope="module")
def keras_weights(fixture_dir) -> Path:
    return fixture_dir / "facechannel_dim_SYNTHETIC_random_weights.h5"


@pytest.fixture(scope="module")
def inputs(fixture_dir) -> np.ndarray:
    return np.load(fixture_dir / "inputs_9x1x64x64_float32.npy")


@pytest.fixture(scope="module")
def keras_outputs(fixture_dir) -> np.ndarray:
    return np.load(fixture_dir / "keras2.15_outputs_arousal_valence_9x2.npy")


@pytest.fixture(scope="module")
def port(keras_weights) -> facechannel.FaceChannelDim:
    return facechannel.load(str(keras_weights))


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    """A file of the authors' Keras layout with seeded weights (tests/inference/facechannel_files.py)."""
    return facechannel_h5_write(tmp_path_factory.mktemp("facechannel") / "facechannel_dim_seeded.h5")


@pytest.fixture(scope="module")
def faces_in() -> np.ndarray:
    """The shipped portraits, preprocessed as the original does (1, 64, 64) in [0, 1]."""
    return np.stack([facechannel.preprocess(cv2.imread(str(FACES / name)), box) for name, box in SHIPPED_FACES])


def _run(model: torch.nn.Module, inputs: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return model(torch.from_numpy(inputs)).numpy()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _edit_config(path: Path, edit) -> None:
    with h5py.File(path, "r+") as handle:
        config = json.loads(handle.attrs["model_config"])
        edit(config["config"]["layers"])
        handle.attrs["model_config"] = json.dumps(config)


def test_it_matches_the_keras_arousal_valence_outputs_within_1e5(port, inputs, keras_outputs) -> None:
    out = _run(port, inputs)
    assert out.shape == (9, 2) and out.dtype == np.float32
    assert np.abs(out - keras_outputs).max() < 1e-5


def test_it_matches_the_keras_flatten_features(port, inputs, fixture_dir) -> None:
    keras_features = np.load(fixture_dir / "keras2.15_dense_input_9x4096.npy")  # (H, W, C) order
    with torch.inference_mode():
        features = port.features(torch.from_numpy(inputs)).numpy()  # (C, H, W) order
    as_chw = keras_features.reshape(9, 4, 4, 256).transpose(0, 3, 1, 2).reshape(9, 4096)
    assert np.abs(features - as_chw).max() < 1e-5


def test_it_would_fail_with_the_wrong_flatten_order(keras_weights, inputs, keras_outputs) -> None:
    wrong = facechannel.load(str(keras_weights), flatten_data_format="channels_last")
    assert np.abs(_run(wrong, inputs) - keras_outputs).max() > 0.05


def test_it_runs_the_optimised_model_with_the_same_outputs_at_any_batch_size(weights, faces_in) -> None:
    loaded = facechannel.facechannel_load(str(weights))
    # The default fp32 kernel (FACECHANNEL_FP32_KERNEL=auto): Winograd, not a silent fallback to ONNX Runtime.
    assert isinstance(loaded.model, WinogradFaceChannel)
    reference = _run(loaded.port, faces_in)  # the plain port, layer by layer as in the file
    assert np.abs(facechannel.facechannel_predict(loaded.model, faces_in, batch_size=3) - reference).max() < 1e-5
    n = len(faces_in)
    single = np.concatenate([facechannel.facechannel_predict(loaded.model, faces_in[i:i + 1]) for i in range(n)])
    assert np.abs(single - reference).max() < 1e-5
    assert facechannel.facechannel_predict(loaded.model, faces_in[:0]).shape == (0, 2)


def test_every_inference_runtime_matches_the_keras_outputs(port, inputs, keras_outputs) -> None:
    for model in (facechannel.OnnxFaceChannel.from_port(port, threads=1),
                  facechannel.OnnxFaceChannel.from_port(port, threads=2),
                  facechannel.facechannel_torchscript(port)):
        assert np.abs(_run(model, inputs) - keras_outputs).max() < 1e-5
        assert np.abs(_run(model, np.concatenate([inputs] * 4)) - np.concatenate([keras_outputs] * 4)).max() < 1e-5


def test_every_inference_runtime_matches_the_port_on_the_shipped_faces(weights, faces_in) -> None:
    """The same check without the Keras fixture (a clone alone): seeded weights, the shipped portraits."""
    port = facechannel.load(str(weights))
    reference = _run(port, faces_in)
    for model in (facechannel.OnnxFaceChannel.from_port(port, threads=1),
                  facechannel.OnnxFaceChannel.from_port(port, threads=2), facechannel.facechannel_torchscript(port)):
        assert np.abs(_run(model, faces_in) - reference).max() < 1e-5
        assert np.abs(_run(model, np.concatenate([faces_in] * 11)) - np.concatenate([reference] * 11)).max() < 1e-5


def test_it_falls_back_to_torchscript_when_onnx_runtime_cannot_run_it(weights, faces_in, monkeypatch, caplog) -> None:
    port = facechannel.load(str(weights))

    def broken(*args, **kwargs):
        raise ValueError("FaceChannel: ONNX Runtime cannot load the exported graph: simulated")

    monkeypatch.setattr("inference.runtime.ort_session", broken)
    with caplog.at_level(logging.WARNING, logger="inference.va.facechannel"):
        model = facechannel.facechannel_optimize(port)
    assert not isinstance(model, facechannel.OnnxFaceChannel)
    assert "ONNX Runtime unavailable" in caplog.text and "simulated" in caplog.text
    assert np.abs(_run(model, faces_in) - _run(port, faces_in)).max() < 1e-5


def test_it_reads_batchnorm_epsilon_and_flatten_format_from_the_file(tmp_path, weights, faces_in) -> None:
    inputs = faces_in
    unedited = _run(facechannel.load(str(weights)), inputs)
    copy = tmp_path / "edited.h5"
    shutil.copy(weights, copy)

    def edit(layers: list[dict]) -> None:
        for layer in layers:
            if layer["class_name"] == "BatchNormalization":
                layer["config"]["epsilon"] = 0.5
            if layer["class_name"] == "Flatten":
                layer["config"]["data_format"] = "channels_last"

    _edit_config(copy, edit)
    model = facechannel.load(str(copy))
    assert {norm.eps for norm in model.norms} == {0.5}
    reference = facechannel.load(str(weights), flatten_data_format="channels_last")
    reference.norms.apply(lambda m: setattr(m, "eps", 0.5) if isinstance(m, torch.nn.BatchNorm2d) else None)
    assert np.abs(_run(model, inputs) - _run(reference, inputs)).max() < 1e-6
    assert np.abs(_run(model, inputs) - unedited).max() > 0.05


def test_it_maps_batchnorm_layers_by_the_graph_when_names_follow_older_keras(tmp_path, weights, faces_in) -> None:
    """Keras 2.2 numbers BatchNormalization layers from _1 and in another order: rename them in reverse, so
    mapping by name alone would give every conv the wrong statistics."""
    inputs = faces_in
    expected = _run(facechannel.load(str(weights)), inputs)
    copy = tmp_path / "renamed.h5"
    shutil.copy(weights, copy)
    with h5py.File(copy, "r+") as handle:
        config = json.loads(handle.attrs["model_config"])
        old = [layer["config"]["name"] for layer in config["config"]["layers"]
               if layer["class_name"] == "BatchNormalization"]
        rename = dict(zip(old, [f"batch_normalization_{i + 1}" for i in reversed(range(len(old)))], strict=True))
        weights = handle["model_weights"]
        for name in old:
            weights.move(name, "tmp-" + rename[name])
        for name in old:
            new = rename[name]
            weights.move("tmp-" + new, new)
            weights[new].attrs["weight_names"] = [
                f"{new}/{_text(w).rsplit('/', 1)[-1]}" for w in weights[new].attrs["weight_names"]]
            weights[new].move(name, new)
        text = json.dumps(config)
        for name in sorted(old, key=len, reverse=True):
            text = text.replace(f'"{name}"', f'"@@{rename[name]}"')
        handle.attrs["model_config"] = text.replace('"@@', '"')
        handle["model_weights"].attrs["layer_names"] = [
            rename.get(_text(n), _text(n)) for n in handle["model_weights"].attrs["layer_names"]]
    assert np.abs(_run(facechannel.load(str(copy)), inputs) - expected).max() < 1e-6


def test_it_reproduces_the_original_preprocessing_exactly(inputs) -> None:
    for i, (name, box) in enumerate(FIXTURE_FACES):
        folder = FACES if (FACES / name).exists() else unshipped_asset("faces", "Pexels' terms forbid redistribution")
        processed = facechannel.preprocess(cv2.imread(str(folder / name)), box)
        assert processed.dtype == np.float32 and processed.shape == (1, 64, 64)
        assert np.array_equal(processed, inputs[i]), name


def test_it_rejects_an_empty_crop() -> None:
    with pytest.raises(ValueError, match="empty"):
        facechannel.preprocess(np.zeros((100, 100, 3), np.uint8), [120, 10, 30, 30])


def test_it_records_the_sha256_and_whether_the_git_blob_is_the_published_file(caplog, weights) -> None:
    info = facechannel.weights_info(str(weights))
    data = weights.read_bytes()
    assert info.sha256 == hashlib.sha256(data).hexdigest()
    assert info.git_blob == hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
    assert info.is_official is False
    assert info.details()["weights_official_blob_match"] is False
    facechannel._cache.pop(str(weights.resolve()))
    with caplog.at_level(logging.WARNING, logger="inference.va.facechannel"):
        facechannel.facechannel_load(str(weights))
    assert "not the published 952d8bc8a22d553e56ec15f6361053ebd113223c" in caplog.text


def test_it_computes_git_blob_ids_like_git_hash_object(tmp_path) -> None:
    path = tmp_path / "hello.txt"
    path.write_bytes(b"hello\n")
    assert facechannel.weights_info(str(path)).git_blob == "ce013625030ba8dba906f756967f9e9ca394464a"


def test_it_loads_each_weights_file_once_per_process(weights) -> None:
    assert facechannel.facechannel_load(str(weights)) is facechannel.facechannel_load(str(weights))


@pytest.mark.parametrize("value", ["", "  "])
def test_it_names_the_setting_when_the_weights_are_not_configured(settings, value: str) -> None:
    settings.FACECHANNEL_WEIGHTS = value
    with pytest.raises(ImproperlyConfigured, match="FACECHANNEL_WEIGHTS"):
        facechannel.facechannel_load()


def test_it_names_the_setting_when_the_weights_file_is_missing(settings, tmp_path) -> None:
    settings.FACECHANNEL_WEIGHTS = str(tmp_path / "DimensionalFaceChannel.h5")
    with pytest.raises(ImproperlyConfigured, match="FACECHANNEL_WEIGHTS=.*DimensionalFaceChannel.h5"):
        facechannel.facechannel_load()


def test_it_rejects_another_keras_model_naming_the_file(tmp_path) -> None:
    """A full-model Keras file of another network (the expression classifier's layout: no FaceChannel layers)."""
    path = tmp_path / "fer2013_mini_XCEPTION.102-0.66.hdf5"
    with h5py.File(path, "w") as handle:
        handle.attrs["model_config"] = json.dumps({"class_name": "Model", "config": {"layers": [
            {"class_name": "Conv2D", "config": {"name": "conv2d_1", "filters": 8}},
            {"class_name": "Dense", "config": {"name": "predictions", "units": 7, "activation": "softmax"}}]}})
        handle.create_group("model_weights")
    with pytest.raises(ValueError, match="fer2013_mini_XCEPTION.*not a FaceChannelV1 dimensional"):
        facechannel.load(str(path))


def test_it_rejects_a_categorical_head(tmp_path, weights) -> None:
    copy = tmp_path / "categorical.h5"
    shutil.copy(weights, copy)

    def edit(layers: list[dict]) -> None:
        for layer in layers:
            if layer["config"]["name"] == "arousal_output":
                layer["config"]["units"], layer["config"]["activation"] = 8, "softmax"

    _edit_config(copy, edit)
    with pytest.raises(ValueError, match="arousal_output has 8 softmax units"):
        facechannel.load(str(copy))


def test_it_rejects_a_weights_only_file(tmp_path, weights) -> None:
    copy = tmp_path / "weights-only.h5"
    shutil.copy(weights, copy)
    with h5py.File(copy, "r+") as handle:
        del handle.attrs["model_config"]
    with pytest.raises(ValueError, match="no model_config"):
        facechannel.load(str(copy))


def test_it_rejects_a_kernel_of_the_wrong_shape(tmp_path, weights) -> None:
    copy = tmp_path / "narrow.h5"
    shutil.copy(weights, copy)
    with h5py.File(copy, "r+") as handle:
        group = handle["model_weights/Vision_conv2/Vision_conv2"]
        del group["kernel:0"]
        group["kernel:0"] = np.zeros((3, 3, 64, 32), np.float32)
    with pytest.raises(ValueError, match=r"Vision_conv2 kernel has shape \(32, 64, 3, 3\), expected \(64, 64, 3, 3\)"):
        facechannel.load(str(copy))


@pytest.mark.parametrize(("name", "content"), [("text.h5", b"not an hdf5 file"), ("empty.h5", b"")])
def test_it_rejects_a_file_that_is_not_hdf5(tmp_path, name: str, content: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ValueError, match=name):
        facechannel.load(str(path))
