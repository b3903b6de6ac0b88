"""VA stage pipelining: decode + detect of the next samples overlap the model's batch, results stay in order."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from inference import faces
from inference.va import facechannel
from inference.va.pipeline import face_prepare, process_prepare, va_pipeline_run, va_process_pool
from tests.conftest import FACES, group_photo_jpeg

NAMES = ["obama.jpg", "group", "astronaut.png", "biden.jpg", "obama-speech.jpg"]  # group: four people


def _bytes(name: str) -> bytes:
    return group_photo_jpeg() if name == "group" else (FACES / name).read_bytes()


def _fake_face(value: int) -> np.ndarray:
    return np.full((1, 4, 4), value, np.float32)


def test_it_returns_each_items_output_in_order_in_full_batches_and_none_without_a_face() -> None:
    batches: list[int] = []

    def predict(stacked: np.ndarray) -> list[float]:
        batches.append(len(stacked))
        return [float(face[0, 0, 0]) * 10 for face in stacked]

    items = list(range(70))
    ran = va_pipeline_run(items, prepare=lambda i: i, face=lambda i: None if i % 14 == 0 else _fake_face(i),
                          predict=predict, batch_size=32, workers=2)
    assert [prepared for prepared, _ in ran] == items
    assert [out for _, out in ran] == [None if i % 14 == 0 else i * 10.0 for i in items]
    assert batches == [32, 32, 1]  # 65 faces: two full batches at the model's batch-32 rate, then the rest


def test_it_prepares_the_next_batch_while_the_model_runs() -> None:
    later_prepared = threading.Event()

    def prepare(i: int) -> int:
        if i >= 8:
            later_prepared.set()
        return i

    overlapped: list[bool] = []

    def predict(stacked: np.ndarray) -> list[int]:
        if not overlapped:  # the first batch: wait for the pool to work on items of the second one
            overlapped.append(later_prepared.wait(timeout=10))
        return [0] * len(stacked)

    va_pipeline_run(list(range(16)), prepare=prepare, face=_fake_face, predict=predict, batch_size=8, workers=2)
    assert overlapped == [True]


def test_it_keeps_at_most_a_window_of_items_prepared_ahead() -> None:
    started: list[int] = []

    def prepare(i: int) -> int:
        started.append(i)
        return i

    seen_ahead: list[int] = []

    def predict(stacked: np.ndarray) -> list[int]:
        time.sleep(0.05)
        seen_ahead.append(len(started))
        return [0] * len(stacked)

    va_pipeline_run(list(range(100)), prepare=prepare, face=_fake_face, predict=predict, batch_size=4, window=6,
                    workers=2)
    # When batch n (4n faces consumed) is predicted, at most `window` more items have been started.
    assert all(count <= 4 * (n + 1) + 6 for n, count in enumerate(seen_ahead))


def test_it_raises_what_prepare_raises_and_rejects_a_bad_batch_size() -> None:
    def prepare(i: int) -> int:
        if i == 3:
            raise RuntimeError("disk gone")
        return i

    with pytest.raises(RuntimeError, match="disk gone"):
        va_pipeline_run(list(range(10)), prepare=prepare, face=_fake_face, predict=lambda s: [0] * len(s))
    for bad in (0, -1, True, 2.5):
        with pytest.raises(ValueError, match="batch size"):
            va_pipeline_run([1], prepare=lambda i: i, face=_fake_face, predict=lambda s: [0], batch_size=bad)


def test_it_crops_the_face_from_the_stored_pixels_as_the_original_preprocessing() -> None:
    data = (FACES / "biden.jpg").read_bytes()  # 970x2204: detection runs on a reduced-scale DCT decode
    prepared = face_prepare(data, body_box=None, preprocess=facechannel.preprocess,
                            detector=faces.face_detector_load("yunet"))
    expected = facechannel.preprocess(faces.image_decode(data), prepared.detection.box.as_list())
    assert prepared.face.shape == (1, 64, 64) and np.array_equal(prepared.face, expected)


def test_it_gives_the_same_detections_from_a_process_pool_as_from_threads() -> None:
    items = [(_bytes(name), None) for name in NAMES]
    detector = faces.face_detector_load("yunet")
    threaded = va_pipeline_run(
        items, prepare=lambda item: face_prepare(item[0], body_box=item[1], preprocess=facechannel.preprocess,
                                                 detector=detector),
        face=lambda p: p.face, predict=lambda stacked: list(stacked.mean(axis=(1, 2, 3))))
    with va_process_pool(2) as pool:
        processed = va_pipeline_run(items, prepare=process_prepare(facechannel.preprocess),
                                    face=lambda p: p.face, predict=lambda stacked: list(stacked.mean(axis=(1, 2, 3))),
                                    executor=pool)
    assert [p.detection.boxes for p, _ in processed] == [p.detection.boxes for p, _ in threaded]
    assert [out for _, out in processed] == [out for _, out in threaded]
    assert len(processed[1][0].detection.boxes) == 4  # the group: every face, not only the chosen one


@pytest.mark.parametrize(("given", "expected"), [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_it_makes_torch_threads_wait_passively_unless_told_otherwise(given, expected) -> None:
    import os
    import subprocess
    import sys

    from tests.conftest import REPO

    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if given:
        env["OMP_WAIT_POLICY"] = given
    code = "import django, os; django.setup(); print(os.environ.get('OMP_WAIT_POLICY'))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == expected
