"""Emotic (Kosti et al.): the original `Annotations.mat` and the common CSV conversion.

Each annotated person is one Sample (external id `folder/filename#x,y,x2,y2`), with the body box kept
so face detection runs inside it, the 26 categories multi-label, and VAD 1–10 mapped to [-1, 1].
"""
from __future__ import annotations

import ast
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from inference.models import EMOTIC_LABELS

from .base import ImportErrorRow, SampleRecord, emotic_scale, normalize_label, path_confine
from .rows import csv_rows_read

# No image a detector reads is this large (JPEG's limit is 65,535 px a side); a larger coordinate is a broken row.
MAX_BOX_COORDINATE = 1_000_000
CSV_COLUMNS = ["Folder", "Filename", "Image Size", "BBox", "Categorical_Labels", "Continuous_Labels", "Gender", "Age"]


def _box(raw: Any) -> list[int]:
    values = [float(v) for v in np.asarray(raw, dtype=float).ravel()]
    if len(values) != 4:
        raise ValueError(f"body box must have 4 numbers, got {len(values)}")
    if not all(math.isfinite(v) for v in values):  # int(round(inf)) raised OverflowError
        raise ValueError(f"body box {values} holds a number that is not finite")
    if any(abs(v) > MAX_BOX_COORDINATE for v in values):
        raise ValueError(f"body box {values} has a coordinate beyond {MAX_BOX_COORDINATE:,} pixels")
    x1, y1, x2, y2 = values
    if x2 <= x1 or y2 <= y1:
        raise ValueError(f"body box {values} has zero or negative size")
    # Emotic boxes are corner pairs (x1, y1, x2, y2); the platform stores (x, y, w, h).
    return [int(round(x1)), int(round(y1)), int(round(x2 - x1)), int(round(y2 - y1))]


def _labels(raw: list[str]) -> list[str]:
    labels: list[str] = []
    for item in raw:
        label = normalize_label(str(item), EMOTIC_LABELS)
        if label is None:
            raise ValueError(f"category {item!r} is not one of Emotic's 26 categories")
        if label not in labels:
            labels.append(label)
    return labels


def _vad(values: list[float]) -> tuple[float, float, float]:
    if len(values) != 3:
        raise ValueError(f"continuous labels must be [valence, arousal, dominance], got {len(values)} values")
    v, a, d = (float(x) for x in values)
    return (emotic_scale(v, what="valence"), emotic_scale(a, what="arousal"), emotic_scale(d, what="dominance"))


def _record(*, location: str, images_root: Path, folder: str, filename: str, box_raw: Any,
            categories: list[str], continuous: list[float] | None, meta: dict,
            follow_symlinks: bool = False) -> SampleRecord:
    box = _box(box_raw)
    labels = _labels(categories)
    valence = arousal = dominance = None
    if continuous is not None:
        valence, arousal, dominance = _vad(continuous)
    rel = f"{folder.strip('/')}/{filename}" if folder else filename
    x, y, w, h = box
    return SampleRecord(
        location=location,
        external_id=f"{rel}#{x},{y},{x + w},{y + h}",
        image_path=path_confine(root=images_root, relative=rel, follow_symlinks=follow_symlinks),
        labels=labels,
        gt_valence=valence,
        gt_arousal=arousal,
        gt_dominance=dominance,
        body_box=box,
        meta=meta,
    )


def iter_emotic(path: Path, *, images_root: Path | None = None, split: str | None = None,
                follow_symlinks: bool = False, **_: Any) -> Iterator[SampleRecord | ImportErrorRow]:
    """Image paths (Folder/Filename) are confined to `images_root` (default: the annotation file's
    folder); see `path_confine`."""
    if not path.is_file():
        yield ImportErrorRow(str(path), "Emotic annotations file not found (expected Annotations.mat or a CSV)")
        return
    root = images_root or path.parent
    if path.suffix.lower() == ".mat":
        yield from _iter_mat(path, root, split, follow_symlinks)
    else:
        yield from _iter_csv(path, root, follow_symlinks)


def _literal(text: str, column: str, *, numbers: bool = False) -> list[Any]:
    """A cell's Python list, e.g. "['Peace', 'Esteem']"; with `numbers`, of plain ints and floats only."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, RecursionError, MemoryError):
        value = None
    # A bare number, None, a set (no order) or a dict was a TypeError that ended the whole import.
    if not isinstance(value, list | tuple):
        raise ValueError(f"column {column!r} is not a list literal: {text[:60]!r}")
    if numbers and not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
        raise ValueError(f"column {column!r} must list numbers: {text[:60]!r}")
    return list(value)


def _iter_csv(path: Path, root: Path, follow_symlinks: bool) -> Iterator[SampleRecord | ImportErrorRow]:
    required = ["Folder", "Filename", "BBox", "Categorical_Labels", "Continuous_Labels"]
    fields: list[str] | None = None
    for raw in csv_rows_read(path):
        location = f"{path.name}:{raw.line}"
        if raw.cells is None:
            yield ImportErrorRow(location, raw.error)
            if fields is None:
                return
            continue
        if fields is None:
            fields = raw.cells
            missing = [c for c in required if c not in fields]
            if missing:
                yield ImportErrorRow(location, f"missing column(s) {', '.join(missing)} "
                                     f"(expected {', '.join(CSV_COLUMNS)})")
                return
            continue
        # Some conversions keep pandas' unnamed index column; it is ignored.
        row = dict(zip(fields, raw.cells, strict=False))
        try:
            if any(row.get(c) in (None, "") for c in required):
                empty = [c for c in required if row.get(c) in (None, "")]
                raise ValueError(f"missing value in column(s) {', '.join(empty)}")
            categories = _literal(row["Categorical_Labels"], "Categorical_Labels")
            continuous = _literal(row["Continuous_Labels"], "Continuous_Labels", numbers=True)
            meta = {k: row[k] for k in ("Gender", "Age", "Image Size") if row.get(k)}
            yield _record(location=location, images_root=root, folder=row["Folder"], filename=row["Filename"],
                          box_raw=_literal(row["BBox"], "BBox", numbers=True), categories=categories,
                          continuous=continuous, meta=meta, follow_symlinks=follow_symlinks)
        except ValueError as exc:
            yield ImportErrorRow(location, str(exc))


def _arr(value: Any) -> np.ndarray:
    return np.atleast_1d(np.asarray(value, dtype=object))


def _strings(value: Any) -> list[str]:
    return [str(v) for v in np.asarray(value, dtype=object).ravel() if str(v).strip()]


def _person_categories(person: Any) -> list[str]:
    if hasattr(person, "combined_categories"):
        return _strings(person.combined_categories)
    categories: list[str] = []
    for annotation in _arr(person.annotations_categories):
        for c in _strings(annotation.categories):
            if c not in categories:
                categories.append(c)
    return categories


def _person_continuous(person: Any) -> list[float] | None:
    if hasattr(person, "combined_continuous"):
        source = person.combined_continuous
        values = np.asarray(source, dtype=float).ravel()
        return None if values.size == 0 or np.isnan(values).any() else [float(v) for v in values[:3]]
    annotations = _arr(person.annotations_continuous)
    triples = []
    for annotation in annotations:
        triple = [float(np.asarray(getattr(annotation, key), dtype=float).ravel()[0])
                  for key in ("valence", "arousal", "dominance")]
        if not any(np.isnan(triple)):
            triples.append(triple)
    if not triples:
        return None
    # Several annotators (val/test split): the mean, as Emotic's own "combined" field does.
    return [float(x) for x in np.mean(np.asarray(triples), axis=0)]


def _iter_mat(path: Path, root: Path, split: str | None,
              follow_symlinks: bool) -> Iterator[SampleRecord | ImportErrorRow]:
    from scipy.io import loadmat

    try:
        mat = loadmat(str(path), squeeze_me=True, struct_as_record=False)
    except Exception as exc:  # scipy raises several unrelated types for a non-MATLAB file
        yield ImportErrorRow(path.name, f"not a readable MATLAB file ({type(exc).__name__}: {exc})")
        return
    splits = [split] if split else [k for k in ("train", "val", "test") if k in mat]
    if not splits or any(s not in mat for s in splits):
        yield ImportErrorRow(path.name, f"no split {split or 'train/val/test'} in the file (keys: "
                             f"{', '.join(k for k in mat if not k.startswith('__'))})")
        return
    for split_name in splits:
        for index, entry in enumerate(_arr(mat[split_name])):
            for p_index, person in enumerate(_arr(entry.person)):
                location = f"{path.name}:{split_name}[{index}].person[{p_index}]"
                try:
                    yield _record(
                        location=location, images_root=root, folder=str(entry.folder), filename=str(entry.filename),
                        box_raw=person.body_bbox, categories=_person_categories(person),
                        continuous=_person_continuous(person), follow_symlinks=follow_symlinks,
                        meta={"split": split_name, "gender": str(getattr(person, "gender", "")),
                              "age": str(getattr(person, "age", ""))},
                    )
                except (ValueError, AttributeError, TypeError) as exc:
                    yield ImportErrorRow(location, str(exc))
