from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from .base import ImportErrorRow, PathRefused, SampleRecord, normalize_label, path_confine

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def iter_folder(root: Path, *, label_set: list[str],
                follow_symlinks: bool = False) -> Iterator[SampleRecord | ImportErrorRow]:
    """One sub-folder per class (FER-style, IIMI): `root/<label>/<image>`. Every class folder and file is
    confined to `root` (see `path_confine`): a symbolic link leading outside is reported, not followed,
    unless `follow_symlinks`."""
    if not root.is_dir():
        yield ImportErrorRow(str(root), "folder format expects a directory with one sub-folder per class")
        return
    base = root.resolve()
    class_dirs: list[Path] = []
    for entry in sorted(base.iterdir()):
        if entry.name.startswith("."):
            continue
        try:
            path_confine(root=base, relative=entry.name, follow_symlinks=follow_symlinks)
        except PathRefused as exc:
            yield ImportErrorRow(entry.name, f"class folder not read: {exc}")
            continue
        if entry.is_dir():
            class_dirs.append(entry)
    if not class_dirs:
        yield ImportErrorRow(str(root), "no class sub-folders found")
        return
    for class_dir in class_dirs:
        label = normalize_label(class_dir.name, label_set)
        files, refused = _class_files(base, class_dir, follow_symlinks=follow_symlinks)
        yield from refused
        if label is None:
            yield ImportErrorRow(
                class_dir.name,
                f"folder name {class_dir.name!r} is not a label of the label set ({', '.join(label_set)}); "
                f"its {len(files)} file(s) were skipped",
            )
            continue
        for rel in files:
            if Path(rel).suffix.lower() not in IMAGE_SUFFIXES:
                yield ImportErrorRow(rel, f"not an image file extension ({Path(rel).suffix or 'none'})")
                continue
            yield SampleRecord(location=rel, external_id=rel, image_path=base / rel, labels=[label])


def _class_files(base: Path, class_dir: Path, *, follow_symlinks: bool) -> tuple[list[str], list[ImportErrorRow]]:
    """Relative paths (posix) of the non-hidden files under a class folder, and the links refused.

    Links are walked (a link inside the dataset is fine) but each entry is confined; `seen` stops a link
    to an enclosing folder from looping."""
    files: list[str] = []
    refused: list[ImportErrorRow] = []
    seen: set[str] = set()
    for folder, dirnames, filenames in os.walk(class_dir, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        rel_folder = Path(folder).relative_to(base)
        dirnames[:] = _confined(base, rel_folder, dirnames, refused, follow_symlinks, what="folder not read: ")
        files.extend((rel_folder / name).as_posix()
                     for name in _confined(base, rel_folder, filenames, refused, follow_symlinks, what=""))
    return sorted(files), refused


def _confined(base: Path, rel_folder: Path, names: list[str], refused: list[ImportErrorRow],
              follow_symlinks: bool, *, what: str) -> list[str]:
    """The non-hidden `names` inside `rel_folder` that stay in the dataset; the others go to `refused`."""
    kept = []
    for name in sorted(names):
        if name.startswith("."):
            continue
        rel = (rel_folder / name).as_posix()
        try:
            path_confine(root=base, relative=rel, follow_symlinks=follow_symlinks)
        except PathRefused as exc:
            refused.append(ImportErrorRow(rel, f"{what}{exc}"))
            continue
        kept.append(name)
    return kept
