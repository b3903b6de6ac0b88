"""YuNet on ONNX Runtime gives exactly what OpenCV's FaceDetectorYN gives on the same pixels.

The detector runs the FACE_DETECTOR_MODEL graph on ONNX Runtime (about twice as fast on the CPU) and decodes
it as OpenCV does (zero padding to a multiple of 32, per-stride anchors, sqrt(cls * obj) scores, NMS on the
integer boxes). The reference here is cv2.FaceDetectorYN itself, on the shipped portraits, the group photo
and the generated recall scenes (crowds of 24-72 px faces), at the detector's input size and larger.
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from inference import faces
from tests.conftest import FACES, group_photo
from tests.inference.test_faces_recall import _face_patches, _scenes


def _opencv(image: np.ndarray) -> np.ndarray:
    detector = cv2.FaceDetectorYN.create(settings.FACE_DETECTOR_MODEL, "", (image.shape[1], image.shape[0]),
                                         faces.YUNET_SCORE_THRESHOLD, faces.YUNET_NMS_THRESHOLD, faces.YUNET_TOP_K)
    _, found = detector.detect(image)
    return np.zeros((0, 15), np.float32) if found is None else found


def _images() -> list[tuple[str, np.ndarray]]:
    images = []
    for path in sorted(FACES.glob("*")):
        if path.suffix.lower() in (".jpg", ".jpeg", ".png"):
            image = cv2.imread(str(path))
            scale = min(1.0, 640 / max(image.shape[:2]))
            images.append((path.name, cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)))
    images.append(("group photo", group_photo()[0]))
    images.append(("odd size 333x171", cv2.resize(images[0][1], (333, 171))))
    for scene in _scenes(_face_patches())[:7]:
        images.append((scene.name, faces.image_decode(scene.jpeg)))
    return images


def test_it_finds_the_same_boxes_scores_and_order_as_opencv() -> None:
    detector = faces.face_detector_load("yunet")
    total = 0
    for name, image in _images():
        reference = _opencv(image)
        found = detector.detect(image)
        assert len(found) == len(reference), name
        for box, ref in zip(found, reference, strict=True):
            assert np.abs(np.array(box.as_list(), np.float64) - ref[:4]).max() < 0.01, (name, box, ref[:4])
            assert abs(box.score - ref[14]) < 1e-4, name
        total += len(found)
    assert total > 100  # crowds included: NMS and the order were really compared


def test_it_finds_nothing_in_a_blank_image_and_handles_tiny_inputs() -> None:
    detector = faces.face_detector_load("yunet")
    assert detector.detect(np.full((480, 640, 3), 127, np.uint8)) == []
    assert detector.detect(np.zeros((1, 1, 3), np.uint8)) == []
    assert detector.runtime.startswith("onnxruntime ")


def test_a_file_that_is_not_yunet_is_refused_naming_the_setting(tmp_path) -> None:
    bogus = tmp_path / "not-yunet.onnx"
    bogus.write_bytes(b"not an onnx graph")
    with pytest.raises(ImproperlyConfigured, match="FACE_DETECTOR_MODEL=.*not a YuNet ONNX model"):
        faces.YuNetDetector(str(bogus))
    mini_xception = next((FACES.parent / "fer-mini-xception").glob("*.onnx"))  # ONNX, but other outputs
    with pytest.raises(ImproperlyConfigured, match="FACE_DETECTOR_MODEL=.*expected"):
        faces.YuNetDetector(str(mini_xception))
