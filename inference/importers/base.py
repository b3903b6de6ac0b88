from __future__ import annotations

import hashlib
import io
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from inference.models import BASIC_LABELS, EMOTIC_LABELS

# Common spellings in basic-emotion datasets (FER2013 folders, IIMI, AffectNet exports) mapped to the
# canonical noun forms the prompts and metrics use.
_BASIC_SYNONYMS = {
    "angry": "anger", "anger": "anger", "mad": "anger",
    "disgust": "disgust", "disgusted": "disgust",
    "fear": "fear", "fearful": "fear", "afraid": "fear", "scared": "fear",
    "happy": "happiness", "happiness": "happiness", "joy": "happiness", "happiest": "happiness",
    "sad": "sadness", "sadness": "sadness",
    "surprise": "surprise", "surprised": "surprise",
    "neutral": "neutral", "calm": "neutral",
    "contempt": "contempt",
}
_EMOTIC_BY_LOWER = {label.lower(): label for label in EMOTIC_LABELS}


def normalize_label(raw: str, label_set: list[str]) -> str | None:
    """The canonical label for `raw` in `label_set`, or None when it is not in the set."""
    text = raw.strip()
    if not text:
        return None
    if text in label_set:
        return text
    lower = text.lower()
    if label_set == EMOTIC_LABELS:
        return _EMOTIC_BY_LOWER.get(lower)
    if label_set == BASIC_LABELS:
        canonical = _BASIC_SYNONYMS.get(lower)
        return canonical if canonical in BASIC_LABELS else None
    by_lower = {label.lower(): label for label in label_set}
    return by_lower.get(lower)


@dataclass
class SampleRecord:
    location: str  # "file:line" for error messages
    external_id: str
    image_path: Path
    labels: list[str] = field(default_factory=list)
    gt_valence: float | None = None
    gt_arousal: float | None = None
    gt_dominance: float | None = None
    references: list[str] = field(default_factory=list)
    body_box: list[int] | None = None
    meta: dict = field(default_factory=dict)


@dataclass
class ImportErrorRow:
    location: str
    reason: str

    def __str__(self) -> str:
        return f"{self.location}: {self.reason}"


class ImageRejected(ValueError):
    pass


class PathRefused(ValueError):
    """An image path that leaves the dataset folder. The message never depends on whether the target
    exists: the check is made on the path alone, before anything is opened."""


def path_confine(*, root: Path, relative: str | Path, follow_symlinks: bool = False) -> Path:
    """`root / relative`, refused when it leaves `root`: an absolute path or `..` always; a symbolic
    link (the file or any folder on the way) that resolves outside `root` unless `follow_symlinks`.

    Why both checks: the lexical one stops `../../etc/passwd` and `/etc/passwd` whatever the options;
    the resolved one stops a link planted inside the dataset folder (a class folder linked to another
    dataset, an image linked to a private file)."""
    text = str(relative)
    if not text.strip():
        raise PathRefused("empty image path")
    if Path(text).is_absolute() or os.path.isabs(text) or (len(text) > 1 and text[1] == ":"):
        raise PathRefused(f"image path {text!r} is absolute; paths must be relative to the dataset folder")
    normal = os.path.normpath(text)
    if normal == ".." or normal.startswith(".." + os.sep) or "\x00" in text:
        raise PathRefused(f"image path {text!r} leaves the dataset folder")
    base = root.resolve()
    candidate = base / normal
    try:
        resolved = candidate.resolve()
    except OSError as exc:  # a name or path too long for the file system, a link loop
        raise PathRefused(f"image path {text[:100]!r} cannot be used: {exc.strerror or exc}") from None
    if not follow_symlinks and not resolved.is_relative_to(base):
        raise PathRefused(f"image path {text!r} leads outside the dataset folder through a symbolic link "
                          "(--follow-symlinks allows it)")
    return candidate


@dataclass
class CheckedImage:
    data: bytes
    sha256: str
    width: int
    height: int
    extension: str


_EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "BMP": "bmp", "GIF": "gif", "TIFF": "tif", "WEBP": "webp"}


def image_check(path: Path, *, max_bytes: int, max_pixels: int) -> CheckedImage:
    """Read and validate one image file: exists, within the byte limit, decodable, not a decompression bomb."""
    try:
        if not path.is_file():
            raise ImageRejected(f"image file not found: {path}")
        size = path.stat().st_size
    except OSError as exc:  # a name too long for the file system (is_file raises ENAMETOOLONG)
        raise ImageRejected(f"cannot read the image file {path.name[:100]!r}: {exc.strerror or exc}") from None
    if size == 0:
        raise ImageRejected(f"image file is empty: {path.name}")
    if size > max_bytes:
        raise ImageRejected(f"image is {size} bytes, over the {max_bytes}-byte limit (IMPORT_MAX_IMAGE_BYTES)")
    data = path.read_bytes()
    try:
        with Image.open(io.BytesIO(data)) as probe:
            width, height = probe.size
            fmt = probe.format or ""
            # Check the declared size before decoding anything: a bomb is a tiny file declaring a huge canvas.
            if width * height > max_pixels:
                raise ImageRejected(
                    f"image declares {width}x{height} = {width * height} pixels, over the {max_pixels}-pixel "
                    "limit (IMPORT_MAX_IMAGE_PIXELS; possible decompression bomb)"
                )
            probe.verify()
        with Image.open(io.BytesIO(data)) as full, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            full.load()
    except ImageRejected:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected(f"not a decodable image ({type(exc).__name__}: {exc})") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageRejected(f"corrupt image ({exc})") from exc
    if width == 0 or height == 0:
        raise ImageRejected("image has zero width or height")
    extension = _EXTENSIONS.get(fmt)
    if extension is None:
        raise ImageRejected(f"unsupported image format {fmt or 'unknown'!r}")
    return CheckedImage(data, hashlib.sha256(data).hexdigest(), width, height, extension)


def emotic_scale(value: float, *, what: str) -> float:
    """Emotic's 1–10 continuous dimensions to [-1, 1] by (x − 5.5)/4.5; outside 1–10 is an error."""
    if not 1.0 <= value <= 10.0:
        raise ValueError(f"{what} {value:g} is outside Emotic's 1-10 scale")
    return (value - 5.5) / 4.5


def unit_interval(value: float, *, what: str) -> float:
    if not -1.0 <= value <= 1.0:
        raise ValueError(f"{what} {value:g} is outside [-1, 1]")
    return value
