from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from .base import ImportErrorRow, SampleRecord, normalize_label

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def iter_folder(root: Path, *, label_set: list[str]) -> Iterator[SampleRecord | ImportErrorRow]:
    """One sub-folder per class (FER-style, IIMI): `root/<label>/<image>`."""
    if not root.is_dir():
        yield ImportErrorRow(str(root), "folder format expects a directory with one sub-folder per class")
        return
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        yield ImportErrorRow(str(root), "no class sub-folders found")
        return
    for class_dir in class_dirs:
        label = normalize_label(class_dir.name, label_set)
        files = sorted(p for p in class_dir.rglob("*") if p.is_file() and not p.name.startswith("."))
        if label is None:
            yield ImportErrorRow(
                str(class_dir),
                f"folder name {class_dir.name!r} is not a label of the label set ({', '.join(label_set)}); "
                f"its {len(files)} file(s) were skipped",
            )
            continue
        for path in files:
            rel = path.relative_to(root).as_posix()
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                yield ImportErrorRow(rel, f"not an image file extension ({path.suffix or 'none'})")
                continue
            yield SampleRecord(location=rel, external_id=rel, image_path=path, labels=[label])
