from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from .base import ImportErrorRow, SampleRecord, normalize_label, path_confine, unit_interval
from .rows import csv_rows_read

LABEL_SEPARATORS = (";", "|")


def _split_labels(raw: object) -> list[str]:
    if raw is None:
        return []
    if isinstance(raw, list):
        return [str(x) for x in raw]
    text = str(raw)
    for sep in LABEL_SEPARATORS:
        if sep in text:
            return [part for part in (p.strip() for p in text.split(sep)) if part]
    return [text.strip()] if text.strip() else []


def _references(row: dict) -> list[str]:
    refs: list[str] = []
    raw = row.get("references")
    if isinstance(raw, list):
        refs.extend(str(r) for r in raw)
    elif isinstance(raw, str) and raw.strip():
        refs.append(raw)
    # CSV manifests carry one column per reference: reference_description, reference_2, reference_3 …
    for key in sorted(k for k in row if k and k.startswith("reference") and k != "references"):
        value = row.get(key)
        if isinstance(value, str) and value.strip():
            refs.append(value)
    return [r.strip() for r in refs if r.strip()]


def _optional_float(row: dict, key: str) -> float | None:
    value = row.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):  # JSON true is not the number 1
        raise ValueError(f"{key} {value!r} is not a number")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{key} {value!r} is not a number") from None


def _record(row: dict, *, location: str, base: Path, label_set: list[str], multilabel: bool,
            follow_symlinks: bool) -> SampleRecord:
    image = row.get("image")
    if not isinstance(image, str) or not image.strip():
        raise ValueError("missing value in column 'image'")
    raw_labels = _split_labels(row.get("labels", row.get("label")))
    labels: list[str] = []
    for raw in raw_labels:
        label = normalize_label(raw, label_set)
        if label is None:
            raise ValueError(f"label {raw!r} is not in the label set ({', '.join(label_set)})")
        if label not in labels:
            labels.append(label)
    if len(labels) > 1 and not multilabel:
        raise ValueError(f"{len(labels)} labels given but the dataset is single-label")
    valence = _optional_float(row, "valence")
    arousal = _optional_float(row, "arousal")
    dominance = _optional_float(row, "dominance")
    record = SampleRecord(
        location=location,
        external_id=image.strip(),
        image_path=path_confine(root=base, relative=image.strip(), follow_symlinks=follow_symlinks),
        labels=labels,
        gt_valence=None if valence is None else unit_interval(valence, what="valence"),
        gt_arousal=None if arousal is None else unit_interval(arousal, what="arousal"),
        gt_dominance=None if dominance is None else unit_interval(dominance, what="dominance"),
        references=_references(row),
    )
    return record


def iter_manifest(
    path: Path, *, label_set: list[str], multilabel: bool = False, follow_symlinks: bool = False
) -> Iterator[SampleRecord | ImportErrorRow]:
    """CSV (header row; columns image, label|labels, valence, arousal, reference_description…) or JSONL
    (one object per line, same keys; `references` may be a list). Image paths are relative to the
    manifest and may not leave its folder (`path_confine`). Read row by row (`importers.rows`): a bad
    row, including invalid UTF-8 or an oversized cell, is reported with its line and the rest read."""
    if not path.is_file():
        yield ImportErrorRow(str(path), "manifest file not found")
        return
    options = {"base": path.parent, "label_set": label_set, "multilabel": multilabel,
               "follow_symlinks": follow_symlinks}
    if path.suffix.lower() in {".jsonl", ".ndjson"}:
        yield from _iter_jsonl(path, options)
        return
    fields: list[str] | None = None
    for raw in csv_rows_read(path):
        location = f"{path.name}:{raw.line}"
        if raw.cells is None:
            yield ImportErrorRow(location, raw.error)
            if fields is None:  # an unreadable header: nothing else can be read
                return
            continue
        if fields is None:
            fields = raw.cells
            if "image" not in fields:
                yield ImportErrorRow(location, f"missing required column 'image' (columns: {', '.join(fields)})")
                return
            continue
        if len(raw.cells) > len(fields):
            yield ImportErrorRow(location, f"row has {len(raw.cells)} cells, header has {len(fields)}")
            continue
        if len(raw.cells) < len(fields):
            yield ImportErrorRow(location, f"row has fewer cells than the header's {len(fields)} columns")
            continue
        try:
            yield _record(dict(zip(fields, raw.cells, strict=True)), location=location, **options)
        except ValueError as exc:
            yield ImportErrorRow(location, str(exc))


def _iter_jsonl(path: Path, options: dict) -> Iterator[SampleRecord | ImportErrorRow]:
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            location = f"{path.name}:{number}"
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                yield ImportErrorRow(location, f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})")
                continue
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                if not isinstance(row, dict):
                    raise ValueError("a JSONL line must be an object")
                yield _record(row, location=location, **options)
            except json.JSONDecodeError as exc:
                yield ImportErrorRow(location, f"invalid JSON ({exc.msg})")
            except RecursionError:
                yield ImportErrorRow(location, "invalid JSON (nested too deeply)")
            except ValueError as exc:
                yield ImportErrorRow(location, str(exc))
