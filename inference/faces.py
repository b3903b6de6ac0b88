"""Face detection and cropping for the VA stage.

Detectors (settings.FACE_DETECTOR): `yunet` (FACE_DETECTOR_MODEL on ONNX Runtime, decoded as OpenCV's
FaceDetectorYN does; the default),
`haar` (OpenCV's bundled frontal-face cascade, no model file needed) and `ssd` (the res10 SSD the
original FaceChannel used; FACE_SSD_PROTOTXT + FACE_SSD_MODEL). Every box found is kept; the sample's
VA uses the largest face (ties broken by score), and the choice is recorded with all boxes.

Images are decoded exactly as stored (no EXIF rotation), so boxes share the pixel coordinates of
`Sample.width/height` and of Emotic's body boxes, which were annotated on the stored pixels.

Detection runs at the resolution the model needs, not at the stored one (`detect_scale`): FaceChannel
takes a 64x64 face, and a face below FACE_MIN_SIZE px (default 24) is upsampled noise for it, so the
detector only has to see such a face at its own smallest reliable size. A large JPEG is then decoded
at 1/2, 1/4 or 1/8 scale in the DCT (`IMREAD_REDUCED_*`) when that still leaves the detector its
input, and the face is cropped from the full-resolution pixels (decoded only when a face was found).
"""
from __future__ import annotations

import io
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from inference.loading import ProcessCache, file_sha256, setting_file

DETECTORS = ("yunet", "haar", "ssd")
# YuNet misses close-ups at full resolution (see the asset README: angry.jpg is only found at 640 px),
# and every detector is faster on the smaller image.
DETECT_MAX_SIDE = 640
# The smallest face worth finding, in stored pixels (settings.FACE_MIN_SIZE): below ~24 px the 64x64
# FaceChannel input is upsampled noise.
FACE_MIN_SIZE = 24
# The smallest face YuNet (score >= 0.7) finds reliably at its input. It finds some faces down to ~12 px,
# but not all: with 16 or 12 here, tests/inference/test_faces_recall.py loses 5 or 12 faces that the
# <= 640 px path finds; with 24 it loses none.
YUNET_MIN_FACE = 24
# cv2 decodes a JPEG at 1/2, 1/4, 1/8 scale in the DCT, far cheaper than decoding it whole and resizing.
# A DCT-reduced decode is used only when it still has at least twice the detector's input resolution: decoded
# at just the input size, its softer pixels lost 31 px faces in a 1920x1080 crowd that the full decode finds.
REDUCED_DECODE_MARGIN = 0.5
_REDUCED_FLAGS = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}
YUNET_SCORE_THRESHOLD = 0.7
YUNET_NMS_THRESHOLD = 0.3
YUNET_TOP_K = 5000
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

    def input_scale(self, width: int, height: int, *, min_face: int) -> float:
        """The scale (<= 1) at which a width x height region is handed to `detect`."""
        ...

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        """Faces in exactly these pixels (already scaled by `input_scale`), in their coordinates."""
        ...


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


def _max_side_scale(width: int, height: int) -> float:
    return min(1.0, DETECT_MAX_SIDE / max(width, height))


def detect_scale(width: int, height: int, *, min_face: int = FACE_MIN_SIZE, detector_min_face: int = YUNET_MIN_FACE,
                 ) -> float:
    """Scale of the detector's input for a width x height region: never above the stored pixels or
    DETECT_MAX_SIDE, and no larger than a `min_face` px face needs to appear at `detector_min_face` px.

    With the defaults (24 px faces, YuNet's 24 px) this is the <= 640 px rule; a larger FACE_MIN_SIZE
    (a dataset of close-ups) lets detection run on fewer pixels.
    """
    if min_face < 1:
        raise ValueError(f"smallest face size must be a positive number of pixels, got {min_face!r}")
    return min(_max_side_scale(width, height), detector_min_face / min_face)


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a baseline/progressive JPEG from its header, or None for anything else."""
    if not data.startswith(b"\xff\xd8\xff"):
        return None
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as handle:  # reads the header only
            return handle.size if handle.format == "JPEG" else None
    except Exception:  # noqa: BLE001 - a broken header: decode it the ordinary way, which reports the error
        return None


class DecodedImage:
    """One stored image, decoded only at the resolutions asked for.

    `at_scale` gives a region at the detector's scale, from a DCT-reduced decode of a JPEG when one is
    large enough; `full` is decoded (once) only when something needs the stored pixels, e.g. the crop.
    """

    def __init__(self, data: bytes | None = None, *, array: np.ndarray | None = None) -> None:
        if (data is None) == (array is None):
            raise ValueError("give the image bytes or a decoded array, not both")
        self._data = data
        self._full = array
        self._reduced: dict[int, np.ndarray] = {}
        size = None if data is None else _jpeg_size(data)
        if size is None:  # not a JPEG (or an unreadable header): decode now, reporting a bad file at once
            self._full = image_decode(data) if array is None else array
            self.height, self.width = self._full.shape[:2]
        else:
            self.width, self.height = size

    @property
    def full(self) -> np.ndarray:
        if self._full is None:
            self._full = image_decode(self._data)
            if self._full.shape[:2] != (self.height, self.width):
                raise ValueError(f"image header says {self.width}x{self.height}, pixels are "
                                 f"{self._full.shape[1]}x{self._full.shape[0]}")
        return self._full

    def _source(self, scale: float) -> tuple[np.ndarray, int]:
        """The least-decoded pixels that still have `scale` of the stored resolution, and their factor."""
        if self._full is None and self._data is not None:
            for factor in (8, 4, 2):
                if scale * factor <= REDUCED_DECODE_MARGIN and min(self.width, self.height) >= 8 * factor:
                    reduced = self._reduced.get(factor)
                    if reduced is None:
                        reduced = cv2.imdecode(np.frombuffer(self._data, np.uint8),
                                               _REDUCED_FLAGS[factor] | cv2.IMREAD_IGNORE_ORIENTATION)
                        if reduced is None or reduced.size == 0:
                            break  # a truncated file: the full decode raises the explanatory error
                        self._reduced[factor] = reduced
                    return reduced, factor
        return self.full, 1

    def at_scale(self, region: list[int], scale: float) -> tuple[np.ndarray, int, int]:
        """The region's pixels resized by `scale`, and the stored-pixel origin of what was taken (a
        reduced decode can start the region up to factor - 1 pixels early)."""
        x, y, w, h = region
        source, factor = self._source(scale)
        sh, sw = source.shape[:2]
        # Reduced decodes are ceil(size / factor) pixels; map the region onto them.
        x0, y0 = min(sw - 1, x // factor), min(sh - 1, y // factor)
        x1, y1 = max(x0 + 1, min(sw, -(-(x + w) // factor))), max(y0 + 1, min(sh, -(-(y + h) // factor)))
        pixels = source[y0:y1, x0:x1]
        target = (max(1, round(w * scale)), max(1, round(h * scale)))
        if (pixels.shape[1], pixels.shape[0]) != target:
            # INTER_AREA, as the stage always resized: the boxes, and so every crop and VA value, stay exactly
            # what they were. (Halving plus bilinear cost a third of the time but moved boxes by up to 3 %,
            # which flipped the 48x48 expression classifier on two sample faces.)
            pixels = cv2.resize(pixels, target, interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(pixels), x0 * factor, y0 * factor


def _required_file(setting: str) -> str:
    return str(setting_file(setting, hint="point it at the face detector's model file"))


class YuNetDetector:
    """YuNet on ONNX Runtime, with OpenCV's FaceDetectorYN pre- and post-processing (same boxes, scores and
    order: tests/inference/test_faces_runtime.py compares them) at less than half its cost on the CPU."""

    name = "yunet"
    STRIDES = (8, 16, 32)
    DIVISOR = 32  # the input is zero-padded on the right and bottom to a multiple of this

    def __init__(self, path: str) -> None:
        from inference.runtime import ort_session, ort_version

        self.path = path
        self.model_sha256 = file_sha256(path)
        # One session for all threads (ONNX Runtime's run is thread-safe); each call runs on its caller's
        # thread, so a pool of preparation threads detects in parallel.
        try:
            self._session = ort_session(path, threads=1, what=f"FACE_DETECTOR_MODEL={path}")
        except ValueError as exc:
            raise ImproperlyConfigured(f"FACE_DETECTOR_MODEL={path} is not a YuNet ONNX model: {exc}") from exc
        inputs = self._session.get_inputs()
        outputs = [o.name for o in self._session.get_outputs()]
        wanted = [f"{kind}_{stride}" for kind in ("cls", "obj", "bbox", "kps") for stride in self.STRIDES]
        if len(inputs) != 1 or any(name not in outputs for name in wanted):
            raise ImproperlyConfigured(f"FACE_DETECTOR_MODEL={path} is not a YuNet ONNX model: outputs "
                                       f"{outputs}, expected {wanted}")
        self._input = inputs[0].name
        self._outputs = wanted
        self.runtime = f"onnxruntime {ort_version()}"

    def input_scale(self, width: int, height: int, *, min_face: int) -> float:
        return detect_scale(width, height, min_face=min_face, detector_min_face=YUNET_MIN_FACE)

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        height, width = image.shape[:2]
        pad_h = ((height - 1) // self.DIVISOR + 1) * self.DIVISOR
        pad_w = ((width - 1) // self.DIVISOR + 1) * self.DIVISOR
        blob = np.zeros((1, 3, pad_h, pad_w), np.float32)  # BGR, unscaled, as cv2.dnn.blobFromImage makes it
        blob[0, :, :height, :width] = image.transpose(2, 0, 1)
        found = dict(zip(self._outputs, self._session.run(self._outputs, {self._input: blob}), strict=True))
        boxes, scores = [], []
        for stride in self.STRIDES:
            cols = pad_w // stride
            cls = np.clip(found[f"cls_{stride}"].reshape(-1), 0, 1)
            obj = np.clip(found[f"obj_{stride}"].reshape(-1), 0, 1)
            score = np.sqrt(cls * obj)
            keep = np.flatnonzero(score >= YUNET_SCORE_THRESHOLD)
            if not len(keep):
                continue
            raw = found[f"bbox_{stride}"].reshape(-1, 4)[keep]
            col = (keep % cols).astype(np.float32)
            row = (keep // cols).astype(np.float32)
            w = np.exp(raw[:, 2]) * np.float32(stride)
            h = np.exp(raw[:, 3]) * np.float32(stride)
            x = (col + raw[:, 0]) * np.float32(stride) - w / np.float32(2)
            y = (row + raw[:, 1]) * np.float32(stride) - h / np.float32(2)
            boxes.append(np.stack([x, y, w, h], axis=1))
            scores.append(score[keep])
        if not boxes:
            return []
        found_boxes, found_scores = np.concatenate(boxes), np.concatenate(scores)
        # YuNet decodes boxes through exp(); a non-finite one came back once in these tests: it is no face.
        finite = np.isfinite(found_boxes).all(axis=1)
        found_boxes, found_scores = found_boxes[finite], found_scores[finite]
        order: Any = range(len(found_boxes))
        if len(found_boxes) > 1:
            # OpenCV suppresses overlaps on the boxes truncated to integers (Rect2i), keeping the float ones.
            order = cv2.dnn.NMSBoxes(np.trunc(found_boxes).astype(np.float64).tolist(), found_scores.tolist(),
                                     YUNET_SCORE_THRESHOLD, YUNET_NMS_THRESHOLD, 1.0, YUNET_TOP_K)
        return [FaceBox(*(float(v) for v in found_boxes[i]), float(found_scores[i])) for i in np.ravel(order)]


class HaarDetector:
    name = "haar"

    def __init__(self) -> None:
        path = str(Path(cv2.data.haarcascades) / HAAR_CASCADE)
        self.model_sha256 = file_sha256(path)
        self._path = path
        self._local = threading.local()

    def input_scale(self, width: int, height: int, *, min_face: int) -> float:
        return _max_side_scale(width, height)  # the cascade's own minSize rule below decides what it sees

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        cascade = getattr(self._local, "cascade", None)
        if cascade is None:
            cascade = self._local.cascade = cv2.CascadeClassifier(self._path)
        gray = cv2.equalizeHist(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
        min_side = max(24, min(gray.shape) // 10)
        found = cascade.detectMultiScale(gray, scaleFactor=1.05, minNeighbors=4, minSize=(min_side, min_side))
        return [FaceBox(x, y, w, h, None) for (x, y, w, h) in found]


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

    def input_scale(self, width: int, height: int, *, min_face: int) -> float:
        return _max_side_scale(width, height)  # it resizes to 300x300 itself, as the original did

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


_detectors: ProcessCache[FaceDetector] = ProcessCache()


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
    def build() -> FaceDetector:
        if name == "yunet":
            return YuNetDetector(key[1])
        if name == "haar":
            return HaarDetector()
        return SSDDetector(key[1], key[2])

    return _detectors.get(key, build)


def face_choose(boxes: list[FaceBox]) -> int | None:
    """Index of the face whose VA represents the sample: the largest one, then the most confident."""
    if not boxes:
        return None
    return max(range(len(boxes)), key=lambda i: (boxes[i].area, boxes[i].score or 0.0))


def face_min_size() -> int:
    """settings.FACE_MIN_SIZE (the smallest face worth finding, in stored pixels), checked."""
    value = getattr(settings, "FACE_MIN_SIZE", FACE_MIN_SIZE)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ImproperlyConfigured(f"FACE_MIN_SIZE={value!r} must be a positive number of pixels")
    return value


def faces_detect(image: np.ndarray | DecodedImage, *, body_box: list[int] | None = None,
                 detector: FaceDetector | None = None, whole_frame_fallback: bool | None = None,
                 min_face: int | None = None) -> Detection:
    """Detect every face (inside `body_box` when given) and choose the sample's face.

    `image` is a decoded array or a `DecodedImage` (which lets a large JPEG be decoded at reduced scale
    for the detector). No face is a normal outcome (`chosen is None`); with the whole-frame fallback
    (the original FaceChannel's behaviour, settings.FACE_WHOLE_FRAME_FALLBACK) the searched region is
    used instead. Boxes are in stored-image pixels.
    """
    detector = detector or face_detector_load()
    if whole_frame_fallback is None:
        whole_frame_fallback = bool(getattr(settings, "FACE_WHOLE_FRAME_FALLBACK", False))
    source = image if isinstance(image, DecodedImage) else DecodedImage(array=image)
    width, height = source.width, source.height
    region = clip_box(body_box, width, height) if body_box is not None else [0, 0, width, height]
    scale = detector.input_scale(region[2], region[3], min_face=min_face or face_min_size())
    pixels, ox, oy = source.at_scale(region, scale)
    boxes = [FaceBox(int(round(b.x / scale)) + ox, int(round(b.y / scale)) + oy, int(round(b.w / scale)),
                     int(round(b.h / scale)), b.score) for b in detector.detect(pixels)]
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

