"""Face detection: YuNet default, Haar fallback, SSD when supplied; body boxes; no-face outcome; decoding."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from django.core.exceptions import ImproperlyConfigured

from inference import faces
from tests.conftest import FACES, group_photo

# Haar boxes printed in the shared assets' faces/README.md: a detector that finds the face overlaps them well.
README_BOXES = {
    "astronaut.png": [174, 65, 99, 99], "obama.jpg": [354, 101, 280, 280],
    "biden.jpg": [424, 206, 328, 328], "obama-speech.jpg": [138, 236, 344, 344],
}


def _iou(a: list[int], b: list[int]) -> float:
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def _image(name: str) -> np.ndarray:
    return faces.image_decode((FACES / name).read_bytes())


def test_it_finds_the_face_on_every_single_face_sample_with_yunet() -> None:
    detector = faces.face_detector_load("yunet")
    for name, reference in README_BOXES.items():
        detection = faces.faces_detect(_image(name), detector=detector)
        assert detection.detector == "yunet" and detection.box is not None, name
        assert _iou(detection.box.as_list(), reference) > 0.4, name
        assert 0.7 <= detection.box.score <= 1.0


def test_it_keeps_every_face_of_a_group_and_chooses_the_largest() -> None:
    image, tiles = group_photo()
    detection = faces.faces_detect(image, detector=faces.face_detector_load("yunet"))
    assert len(detection.boxes) == 4
    areas = [b.area for b in detection.boxes]
    assert detection.chosen == areas.index(max(areas))
    assert detection.box.x >= tiles[-1][0]  # the largest face is the last person's
    details = detection.details()
    assert details["boxes"] == [b.as_list() for b in detection.boxes]
    assert details["chosen"] == detection.chosen and details["choice_rule"].startswith("largest")
    assert details["detector_sha256"] == faces.file_sha256(faces.settings.FACE_DETECTOR_MODEL)


def test_it_detects_inside_the_body_box_only() -> None:
    image, tiles = group_photo()
    body = tiles[2]  # the astronaut's tile, as Emotic would box the person
    whole = faces.faces_detect(image, detector=faces.face_detector_load("yunet"))
    expected = next(b.as_list() for b in whole.boxes if body[0] <= b.x < body[0] + body[2])
    detection = faces.faces_detect(image, body_box=body, detector=faces.face_detector_load("yunet"))
    assert detection.region == body
    assert len(detection.boxes) == 1  # the other three people are outside the body box
    found = detection.box.as_list()
    assert _iou(found, expected) > 0.6  # and the box is back in whole-image coordinates
    assert body[0] <= found[0] and found[0] + found[2] <= body[0] + body[2]


def test_it_records_no_face_without_crashing_and_uses_the_whole_frame_only_when_asked() -> None:
    blank = np.full((300, 400, 3), 127, np.uint8)
    detector = faces.face_detector_load("yunet")
    detection = faces.faces_detect(blank, detector=detector, whole_frame_fallback=False)
    assert detection.boxes == [] and detection.chosen is None and detection.box is None
    fallback = faces.faces_detect(blank, body_box=[10, 20, 100, 200], detector=detector, whole_frame_fallback=True)
    assert fallback.whole_frame is True and fallback.box.as_list() == [10, 20, 100, 200]
    assert fallback.details()["whole_frame_fallback"] is True


def test_it_reads_the_whole_frame_fallback_setting(settings) -> None:
    settings.FACE_WHOLE_FRAME_FALLBACK = True
    detection = faces.faces_detect(np.zeros((64, 80, 3), np.uint8), detector=faces.face_detector_load("yunet"))
    assert detection.box.as_list() == [0, 0, 80, 64]


@pytest.mark.parametrize("body_box", [[500, 500, 10, 10], [10, 10, 0, 50], [-50, -50, 20, 20], [1, 2, 3]])
def test_it_rejects_a_body_box_with_nothing_inside_the_image(body_box: list[int]) -> None:
    with pytest.raises(ValueError, match="box"):
        faces.faces_detect(np.zeros((100, 100, 3), np.uint8), body_box=body_box,
                           detector=faces.face_detector_load("yunet"))


def test_it_clips_a_body_box_that_reaches_past_the_border() -> None:
    detection = faces.faces_detect(np.zeros((100, 100, 3), np.uint8), body_box=[-10, 50, 50, 80],
                                   detector=faces.face_detector_load("yunet"))
    assert detection.region == [0, 50, 40, 50]


def test_it_falls_back_to_the_bundled_haar_cascade() -> None:
    detector = faces.face_detector_load("haar")
    detection = faces.faces_detect(_image("obama.jpg"), detector=detector)
    assert detection.detector == "haar"
    assert _iou(detection.box.as_list(), README_BOXES["obama.jpg"]) > 0.5
    assert detection.box.score is None  # Haar gives no confidence; it is not invented


def test_it_uses_the_configured_detector_once_per_process(settings) -> None:
    settings.FACE_DETECTOR = "haar"
    assert faces.face_detector_load() is faces.face_detector_load()
    assert faces.face_detector_load().name == "haar"


def test_it_names_the_ssd_setting_when_its_caffemodel_is_not_supplied(settings) -> None:
    settings.FACE_DETECTOR, settings.FACE_SSD_MODEL = "ssd", ""
    with pytest.raises(ImproperlyConfigured, match="FACE_SSD_MODEL"):
        faces.face_detector_load()


def test_it_rejects_an_ssd_model_that_is_not_a_caffemodel(settings, tmp_path) -> None:
    fake = tmp_path / "res10.caffemodel"
    fake.write_bytes(b"not a caffe model")
    settings.FACE_DETECTOR, settings.FACE_SSD_MODEL = "ssd", str(fake)
    with pytest.raises(ImproperlyConfigured, match="not a Caffe SSD"):
        faces.face_detector_load()


def test_it_names_the_setting_of_an_unknown_detector(settings) -> None:
    settings.FACE_DETECTOR = "mtcnn"
    with pytest.raises(ImproperlyConfigured, match="FACE_DETECTOR='mtcnn'"):
        faces.face_detector_load()


@pytest.mark.parametrize("content", [None, b"garbage, not onnx"])
def test_it_names_face_detector_model_when_the_yunet_file_is_missing_or_wrong(settings, tmp_path, content) -> None:
    path = tmp_path / "yunet.onnx"
    if content is not None:
        path.write_bytes(content)
    settings.FACE_DETECTOR, settings.FACE_DETECTOR_MODEL = "yunet", str(path)
    with pytest.raises(ImproperlyConfigured, match="FACE_DETECTOR_MODEL"):
        faces.face_detector_load()


def _encode(image: np.ndarray, ext: str = ".png") -> bytes:
    ok, buffer = cv2.imencode(ext, image)
    assert ok
    return buffer.tobytes()


def test_it_decodes_grayscale_rgba_and_16_bit_images_to_8_bit_bgr() -> None:
    gray = np.tile(np.arange(0, 250, 10, dtype=np.uint8), (20, 1))
    rgba = np.dstack([np.full((20, 25), c, np.uint8) for c in (10, 20, 30, 255)])
    deep = (gray.astype(np.uint16) << 8) | 0xFF
    for source in (gray, rgba, deep):
        decoded = faces.image_decode(_encode(source))
        assert decoded.dtype == np.uint8 and decoded.shape == (20, 25, 3)
    assert faces.image_decode(_encode(rgba))[0, 0].tolist() == [10, 20, 30]
    assert faces.image_decode(_encode(deep))[0, 3].tolist() == [30, 30, 30]


@pytest.mark.parametrize("data", [b"", b"GIF89a not really", _encode(np.zeros((8, 8), np.uint8))[:20]])
def test_it_rejects_bytes_that_are_not_an_image(data: bytes) -> None:
    with pytest.raises(ValueError, match="image"):
        faces.image_decode(data)


def test_it_finds_a_close_up_face_thanks_to_downscaling() -> None:
    """A face filling a 1400 px frame (YuNet missed such a close-up at full size, asset README)."""
    x, y, w, h = README_BOXES["obama.jpg"]
    image = cv2.resize(_image("obama.jpg")[y - 40:y + h + 40, x - 40:x + w + 40], (1400, 1400))
    assert max(image.shape[:2]) > faces.DETECT_MAX_SIDE
    assert faces.faces_detect(image, detector=faces.face_detector_load("yunet")).box is not None


def test_it_crops_inside_the_image() -> None:
    image = np.arange(100 * 100 * 3, dtype=np.uint8).reshape(100, 100, 3)
    assert faces.face_crop(image, [90, 90, 30, 30]).shape == (10, 10, 3)
    with pytest.raises(ValueError, match="zero size"):
        faces.face_crop(image, [100, 0, 10, 10])


def test_it_gives_the_same_boxes_when_threads_share_one_detector() -> None:
    """The service decodes and detects in a thread pool: each thread must get its own YuNet state."""
    from concurrent.futures import ThreadPoolExecutor

    detector = faces.face_detector_load("yunet")
    images = [group_photo()[0]] + [_image(name) for name in ("obama.jpg", "astronaut.png", "biden.jpg")]
    images *= 3
    sequential = [faces.faces_detect(image, detector=detector).boxes for image in images]
    with ThreadPoolExecutor(max_workers=4) as pool:
        threaded = list(pool.map(lambda image: faces.faces_detect(image, detector=detector).boxes, images))
    assert threaded == sequential
