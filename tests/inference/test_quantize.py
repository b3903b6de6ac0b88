"""Opt-in int8 FaceChannel: static post-training quantisation, bounded deviation from fp32, refusal above it."""
from __future__ import annotations

import dataclasses
import hashlib
import shutil

import numpy as np
import onnx
import pytest
import torch
from django.core.exceptions import ImproperlyConfigured

from inference.models import VAEstimate
from inference.services.va import va_extract_samples
from inference.va import facechannel, quantize
from tests.conftest import FACES, unshipped_asset
from tests.inference.facechannel_files import facechannel_h5_write
from tests.inference.test_va_service import dataset, face_sample  # noqa: F401 - the fixture is used by name


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A file of the authors' Keras layout with seeded weights (tests/inference/facechannel_files.py)."""
    return facechannel_h5_write(tmp_path_factory.mktemp("quantize") / "facechannel_dim_seeded.h5")


@pytest.fixture(scope="module")
def port(weights) -> facechannel.FaceChannelDim:
    return facechannel.load(str(weights))


@pytest.fixture(scope="module")
def calibration() -> tuple[np.ndarray, list[str]]:
    return quantize.calibration_faces(str(FACES))


@pytest.fixture(scope="module")
def int8(port, calibration) -> quantize.Int8FaceChannel:
    return quantize.int8_build(port, *calibration, bound=0.02)


def _run(model: torch.nn.Module, inputs: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return model(torch.from_numpy(inputs)).numpy()


def test_it_stays_within_002_of_fp32(port, int8, calibration) -> None:
    inputs = calibration[0]
    out = _run(int8.model, inputs)
    assert out.shape == (len(inputs), 2)
    assert np.abs(out - _run(port, inputs)).max() <= 0.02
    # It really is int8 arithmetic, not the fp32 model under another name.
    ops = [node.op_type for node in onnx.load_from_string(int8.model.graph).graph.node]
    assert ops.count("QLinearConv") == 11 and "Conv" not in ops and "QGemm" in ops
    assert np.abs(out - _run(port, inputs)).max() > 1e-6


def test_it_stays_within_002_of_keras_on_the_synthetic_fixture(calibration) -> None:
    fixture = unshipped_asset("facechannel/synthetic-test-fixture", "14 MB of random Keras weights: too large to ship")
    keras_port = facechannel.load(str(fixture / "facechannel_dim_SYNTHETIC_random_weights.h5"))
    int8 = quantize.int8_build(keras_port, *calibration, bound=0.02)
    inputs = np.load(fixture / "inputs_9x1x64x64_float32.npy")
    keras = np.load(fixture / "keras2.15_outputs_arousal_valence_9x2.npy")
    out = _run(int8.model, inputs)
    assert np.abs(out - keras).max() <= 0.02 + 1e-5
    assert np.abs(out - keras).max() > 1e-5


def test_it_records_its_calibration_deviation_and_its_own_model_version(int8, calibration, weights) -> None:
    faces, names = calibration
    assert len(faces) == 2 * len(names) and "obama.jpg" in names  # each face also mirrored
    assert 0 < int8.deviation <= 0.02
    details = int8.details()
    assert details["precision"] == "int8" and details["int8_bound"] == 0.02
    sha = hashlib.sha256(weights.read_bytes()).hexdigest()
    assert int8.version(sha) != sha and len(int8.version(sha)) == 64
    # 7-bit weights on CPUs without VNNI: recorded, and never mixed with 8-bit results.
    assert details["int8_weight_bits"] == int8.weight_bits == quantize.weight_bits() in (7, 8)
    other = dataclasses.replace(int8, weight_bits=15 - int8.weight_bits)
    assert other.version(sha) != int8.version(sha)


def test_it_uses_7_bit_weights_exactly_when_the_cpu_lacks_vnni(monkeypatch) -> None:
    monkeypatch.setattr(torch.cpu, "_is_vnni_supported", lambda: False)
    assert quantize.weight_bits() == 7
    monkeypatch.setattr(torch.cpu, "_is_vnni_supported", lambda: True)
    assert quantize.weight_bits() == 8


def test_it_refuses_when_the_calibration_deviation_exceeds_the_bound(port, calibration) -> None:
    faces, names = calibration
    with pytest.raises(quantize.Int8RefusedError, match=r"refused.*above the bound 0\.0001.*MAX_DEVIATION"):
        quantize.int8_build(port, faces[:8], names[:4], bound=0.0001)


def test_it_refuses_int8_in_the_va_stage_before_writing_anything(dataset, settings, weights) -> None:  # noqa: F811
    settings.FACECHANNEL_WEIGHTS = str(weights)
    settings.FACECHANNEL_PRECISION = "int8"
    settings.FACECHANNEL_INT8_MAX_DEVIATION = 0.0001
    sample = face_sample(dataset, "obama.jpg")
    with pytest.raises(ImproperlyConfigured, match="int8 refused"):
        va_extract_samples(sample_ids=[sample.pk], source="facechannel")
    assert not VAEstimate.objects.exists()


def test_it_stores_int8_estimates_apart_from_fp32_ones(dataset, settings, tmp_path, weights) -> None:  # noqa: F811
    calibration = tmp_path / "calibration"
    calibration.mkdir()
    for name in ("obama.jpg", "biden.jpg", "astronaut.png", "obama-speech.jpg"):
        shutil.copy(FACES / name, calibration / name)
    (calibration / "notes.txt").write_text("not an image")
    settings.FACECHANNEL_WEIGHTS = str(weights)
    samples = [face_sample(dataset, name) for name in ("obama.jpg", "astronaut.png")]
    ids = [s.pk for s in samples]
    assert va_extract_samples(sample_ids=ids, source="facechannel")["done"] == 2
    settings.FACECHANNEL_PRECISION = "int8"
    settings.FACECHANNEL_INT8_CALIBRATION = str(calibration)
    assert va_extract_samples(sample_ids=ids, source="facechannel")["done"] == 2
    rows = VAEstimate.objects.filter(source="facechannel")
    assert rows.count() == 4 and len({r.model_sha256 for r in rows}) == 2
    fp32 = {r.sample_id: r for r in rows if r.details["precision"] == "fp32"}
    int8 = {r.sample_id: r for r in rows if r.details["precision"] == "int8"}
    assert int8[ids[0]].details["int8_calibration"] == ["astronaut.png", "biden.jpg", "obama-speech.jpg",
                                                       "obama.jpg"]
    for pk in ids:
        assert abs(int8[pk].valence - fp32[pk].valence) <= 0.02 and abs(int8[pk].arousal - fp32[pk].arousal) <= 0.02


@pytest.mark.parametrize(("name", "value", "match"), [
    ("FACECHANNEL_PRECISION", "int4", "FACECHANNEL_PRECISION='int4'"),
    ("FACECHANNEL_INT8_MAX_DEVIATION", 0, "FACECHANNEL_INT8_MAX_DEVIATION"),
    ("FACECHANNEL_INT8_MAX_DEVIATION", "0.02", "FACECHANNEL_INT8_MAX_DEVIATION"),
    ("FACECHANNEL_INT8_CALIBRATION", "/nonexistent/faces", "FACECHANNEL_INT8_CALIBRATION"),
])
def test_it_names_the_setting_that_is_wrong(settings, weights, name, value, match) -> None:
    settings.FACECHANNEL_PRECISION = "int8"
    setattr(settings, name, value)
    with pytest.raises(ImproperlyConfigured, match=match):
        facechannel.facechannel_load(str(weights))


def test_it_refuses_a_calibration_folder_with_too_few_faces(settings, tmp_path, weights) -> None:
    shutil.copy(FACES / "obama.jpg", tmp_path / "obama.jpg")
    settings.FACECHANNEL_PRECISION, settings.FACECHANNEL_INT8_CALIBRATION = "int8", str(tmp_path)
    with pytest.raises(ImproperlyConfigured, match="1 usable images"):
        facechannel.facechannel_load(str(weights))


def test_it_keeps_fp32_the_default(settings, weights) -> None:
    loaded = facechannel.facechannel_load(str(weights))
    assert loaded.precision == "fp32" and loaded.version == hashlib.sha256(weights.read_bytes()).hexdigest()
