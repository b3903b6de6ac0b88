"""Face detection and cropping for the VA stage.

Detectors (settings.FACE_DETECTOR): `yunet` (cv2.FaceDetectorYN on FACE_DETECTOR_MODEL, the default),
`haar` (OpenCV's bundled frontal-face cascade, no model file needed) and `ssd` (the res10 SSD the
original FaceChannel used; FACE_SSD_PROTOTXT + FACE_SSD_MODEL). Every box found is kept; the sample's
VA uses the largest face (ties broken by score), and the choice is recorded with all boxes.

Images are decoded exactly as stored (no EXIF rotation), so boxes share the pixel coordinates of
`Sample.width/height` and of Emotic's body boxes, which were annotated on the stored pixels.
"""
from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

DETECTORS = ("yunet", "haar", "ssd")
# YuNet misses close-ups at full resolution (see the asset README: angry.jpg is only found at 640 px),
# and every detector is faster on the smaller image.
DETECT_MAX_SIDE = 640
YUNET_SCORE_THRESHOLD = 0.7
YUNET_NMS_THRESHOLD = 0.3
SSD_CONFIDENCE = 0.5  # the original FaceChannel's threshold
HAAR_CASCADE = "haarcascade_frontalface_alt2.xml"


@dataclass(frozen=True)
class FaceBox:
    x: int
    y: int
    w: int
    h: int
    score: float | None  # None: Haar gives no confidence

    @property
    def area(self) -> int:
        return self.w * self.h

    def as_list(self) -> list[int]:
        return [self.x, self.y, self.w, self.h]


@dataclass(frozen=True)
class Detection:
    """The outcome for one image: every box (image coordinates), which one was chosen, and why."""

    detector: str
    model_sha256: str
    boxes: list[FaceBox]
    chosen: int | None
    region: list[int]  # [x, y, w, h] searched: the body box, or the whole image
    whole_frame: bool = False  # no face found, FACE_WHOLE_FRAME_FALLBACK used the region instead

    @property
    def box(self) -> FaceBox | None:
        if self.chosen is not None:
            return self.boxes[self.chosen]
        if self.whole_frame:
            x, y, w, h = self.region
            return FaceBox(x, y, w, h, None)
        return None

    def details(self) -> dict[str, Any]:
        return {
            "detector": self.detector,
            "detector_sha256": self.model_sha256,
            "boxes": [b.as_list() for b in self.boxes],
            "scores": [b.score for b in self.boxes],
            "chosen": self.chosen,
            "choice_rule": "largest area, then highest score",
            "region": self.region,
            "whole_frame_fallback": self.whole_frame,
        }


class FaceDetector(Protocol):
    name: str
    model_sha256: str

    def detect(self, image: np.ndarray) -> list[FaceBox]: ...


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def image_decode(data: bytes) -> np.ndarray:
    """Bytes -> 3-channel uint8 BGR. Grayscale, RGBA and 16-bit images are converted; anything
    OpenCV cannot decode is a ValueError."""
    if not data:
        raise ValueError("image file is empty")
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        raise ValueError("image cannot be decoded (not a supported image format, or truncated)")
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype in (np.float32, np.float64):
        image = np.clip(image * 255.0, 0, 255).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise ValueError(f"image has unsupported sample type {image.dtype}")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    channels = image.shape[2]
    if channels == 1:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if channels == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if channels == 3:
        return image
    raise ValueError(f"image has {channels} channels; expected 1, 3 or 4")


def clip_box(box: list[int] | tuple[int, ...], width: int, height: int) -> list[int]:
    """[x, y, w, h] clipped to the image; ValueError when nothing of it lies inside."""
    if len(box) != 4:
        raise ValueError(f"box {box!r} must be [x, y, w, h]")
    x, y, w, h = (int(round(float(v))) for v in box)
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(width, x + w), min(height, y + h)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"box {list(box)} has zero size inside the {width}x{height} image")
    return [x0, y0, x1 - x0, y1 - y0]


def _downscale(image: np.ndarray) -> tuple[np.ndarray, float]:
    height, width = image.shape[:2]
    scale = min(1.0, DETECT_MAX_SIDE / max(height, width))
    if scale >= 1.0:
        return image, 1.0
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), scale


def _required_file(setting: str) -> str:
    path = str(getattr(settings, setting, "") or "").strip()
    if not path:
        raise ImproperlyConfigured(f"{setting} is not set: point it at the face detector's model file")
    if not Path(path).is_file():
        raise ImproperlyConfigured(f"{setting}={path} does not exist or is not a file")
    return path


class YuNetDetector:
    name = "yunet"

    def __init__(self, path: str) -> None:
        self.path = path
        self.model_sha256 = file_sha256(path)
        # cv2.FaceDetectorYN keeps per-call state (input size), so each thread of a threads-pool
        # worker gets its own instance; creating one takes about a millisecond.
        self._local = threading.local()
        self._instance()  # fail now, naming the setting, if the file is not a YuNet model

    def _instance(self) -> Any:
        detector = getattr(self._local, "detector", None)
        if detector is None:
            try:
                detector = cv2.FaceDetectorYN.create(
                    self.path, "", (320, 320), YUNET_SCORE_THRESHOLD, YUNET_NMS_THRESHOLD, 5000)
            except cv2.error as exc:
                raise ImproperlyConfigured(
                    f"FACE_DETECTOR_MODEL={self.path} is not a YuNet ONNX model: {exc}") from exc
            self._local.detector = detector
        return detector

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        small, scale = _downscale(image)
        detector = self._instance()
        detector.setInputSize((small.shape[1], small.shape[0]))
        _, faces = detector.detect(small)
        if faces is None:
            return []
        return [FaceBox(int(round(f[0] / scale)), int(round(f[1] / scale)), int(round(f[2] / scale)),
                        int(round(f[3] / scale)), float(f[-1])) for f in faces]


class HaarDetector:
    name = "haar"

    def __init__(self) -> None:
        path = str(Path(cv2.data.haarcascades) / HAAR_CASCADE)
        self.model_sha256 = file_sha256(path)
        self._path = path
        self._local = threading.local()

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        cascade = getattr(self._local, "cascade", None)
        if cascade is None:
            cascade = self._local.cascade = cv2.CascadeClassifier(self._path)
        small, scale = _downscale(image)
        gray = cv2.equalizeHist(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY))
        min_side = max(24, min(gray.shape) // 10)
        found = cascade.detectMultiScale(gray, scaleFactor=1.05, minNeighbors=4, minSize=(min_side, min_side))
        return [FaceBox(int(round(x / scale)), int(round(y / scale)), int(round(w / scale)), int(round(h / scale)),
                        None) for (x, y, w, h) in found]


class SSDDetector:
    """The res10 300x300 SSD of the original FaceChannel demo, with its preprocessing and threshold."""

    name = "ssd"

    def __init__(self, prototxt: str, model: str) -> None:
        self.model_sha256 = file_sha256(model)
        self._files = (prototxt, model)
        self._local = threading.local()
        self._net()

    def _net(self) -> Any:
        net = getattr(self._local, "net", None)
        if net is None:
            try:
                net = self._local.net = cv2.dnn.readNetFromCaffe(*self._files)
            except cv2.error as exc:
                raise ImproperlyConfigured(
                    f"FACE_SSD_PROTOTXT/FACE_SSD_MODEL ({', '.join(self._files)}) are not a Caffe SSD: {exc}"
                ) from exc
        return net

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        height, width = image.shape[:2]
        net = self._net()
        net.setInput(cv2.dnn.blobFromImage(cv2.resize(image, (300, 300)), 1.0, (300, 300), (104.0, 177.0, 123.0)))
        detections = net.forward()
        boxes = []
        for row in detections[0, 0]:
            confidence = float(row[2])
            if confidence < SSD_CONFIDENCE:
                continue
            x0, y0, x1, y1 = (row[3:7] * np.array([width, height, width, height])).astype(int)
            if x1 > x0 and y1 > y0:
                boxes.append(FaceBox(int(x0), int(y0), int(x1 - x0), int(y1 - y0), confidence))
        return boxes


_detectors: dict[tuple[str, ...], FaceDetector] = {}
_lock = threading.Lock()


def face_detector_load(name: str | None = None) -> FaceDetector:
    """The configured detector, built once per process (None -> settings.FACE_DETECTOR)."""
    name = (name or getattr(settings, "FACE_DETECTOR", "") or "yunet").strip().lower()
    if name == "yunet":
        key: tuple[str, ...] = (name, _required_file("FACE_DETECTOR_MODEL"))
    elif name == "haar":
        key = (name,)
    elif name == "ssd":
        key = (name, _required_file("FACE_SSD_PROTOTXT"), _required_file("FACE_SSD_MODEL"))
    else:
        raise ImproperlyConfigured(f"FACE_DETECTOR={name!r} is not one of {', '.join(DETECTORS)}")
    with _lock:
        detector = _detectors.get(key)
        if detector is None:
            if name == "yunet":
                detector = YuNetDetector(key[1])
            elif name == "haar":
                detector = HaarDetector()
            else:
                detector = SSDDetector(key[1], key[2])
            _detectors[key] = detector
        return detector


def face_choose(boxes: list[FaceBox]) -> int | None:
    """Index of the face whose VA represents the sample: the largest one, then the most confident."""
    if not boxes:
        return None
    return max(range(len(boxes)), key=lambda i: (boxes[i].area, boxes[i].score or 0.0))


def faces_detect(image: np.ndarray, *, body_box: list[int] | None = None, detector: FaceDetector | None = None,
                 whole_frame_fallback: bool | None = None) -> Detection:
    """Detect every face (inside `body_box` when given) and choose the sample's face.

    No face is a normal outcome (`chosen is None`); with the whole-frame fallback (the original
    FaceChannel's behaviour, settings.FACE_WHOLE_FRAME_FALLBACK) the searched region is used instead.
    """
    detector = detector or face_detector_load()
    if whole_frame_fallback is None:
        whole_frame_fallback = bool(getattr(settings, "FACE_WHOLE_FRAME_FALLBACK", False))
    height, width = image.shape[:2]
    region = clip_box(body_box, width, height) if body_box is not None else [0, 0, width, height]
    x, y, w, h = region
    boxes = [FaceBox(b.x + x, b.y + y, b.w, b.h, b.score)
             for b in detector.detect(np.ascontiguousarray(image[y:y + h, x:x + w]))]
    # A detector may return a box reaching past the border; clip it so every crop is inside the image.
    clipped = []
    for b in boxes:
        try:
            cx, cy, cw, ch = clip_box(b.as_list(), width, height)
        except ValueError:
            continue
        clipped.append(FaceBox(cx, cy, cw, ch, b.score))
    chosen = face_choose(clipped)
    return Detection(detector=detector.name, model_sha256=detector.model_sha256, boxes=clipped, chosen=chosen,
                     region=region, whole_frame=chosen is None and whole_frame_fallback)


def face_crop(image: np.ndarray, box: FaceBox | list[int]) -> np.ndarray:
    """The box's pixels (clipped to the image); ValueError for a box with nothing inside."""
    coords = box.as_list() if isinstance(box, FaceBox) else list(box)
    x, y, w, h = clip_box(coords, image.shape[1], image.shape[0])
    return image[y:y + h, x:x + w]

