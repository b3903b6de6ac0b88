from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

from .base import ImportErrorRow, SampleRecord, normalize_label, unit_interval

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
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{key} {value!r} is not a number") from None


def _record(row: dict, *, location: str, base: Path, label_set: list[str], multilabel: bool) -> SampleRecord:
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
        image_path=(base / image.strip()),
        labels=labels,
        gt_valence=None if valence is None else unit_interval(valence, what="valence"),
        gt_arousal=None if arousal is None else unit_interval(arousal, what="arousal"),
        gt_dominance=None if dominance is None else unit_interval(dominance, what="dominance"),
        references=_references(row),
    )
    return record


def iter_manifest(
    path: Path, *, label_set: list[str], multilabel: bool = False
) -> Iterator[SampleRecord | ImportErrorRow]:
    """CSV (header row; columns image, label|labels, valence, arousal, reference_description…) or JSONL
    (one object per line, same keys; `references` may be a list). Image paths are relative to the manifest."""
    if not path.is_file():
        yield ImportErrorRow(str(path), "manifest file not found")
        return
    base = path.parent
    if path.suffix.lower() in {".jsonl", ".ndjson"}:
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                location = f"{path.name}:{number}"
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    if not isinstance(row, dict):
                        raise ValueError("a JSONL line must be an object")
                    yield _record(row, location=location, base=base, label_set=label_set, multilabel=multilabel)
                except json.JSONDecodeError as exc:
                    yield ImportErrorRow(location, f"invalid JSON ({exc.msg})")
                except ValueError as exc:
                    yield ImportErrorRow(location, str(exc))
        return
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
        reader = csv.DictReader(handle)
        fields = reader.fieldnames or []
    except UnicodeDecodeError:
        yield ImportErrorRow(path.name, "manifest is not UTF-8 text")
        return
    with handle:
        if "image" not in fields:
            yield ImportErrorRow(f"{path.name}:1", f"missing required column 'image' (columns: {', '.join(fields)})")
            return
        try:
            for row in reader:
                location = f"{path.name}:{reader.line_num}"
                if None in row:
                    yield ImportErrorRow(location, f"row has {len(fields) + len(row[None])} cells, header has {len(fields)}")
                    continue
                if any(row.get(name) is None for name in fields):
                    yield ImportErrorRow(location, f"row has fewer cells than the header's {len(fields)} columns")
                    continue
                try:
                    yield _record(row, location=location, base=base, label_set=label_set, multilabel=multilabel)
                except ValueError as exc:
                    yield ImportErrorRow(location, str(exc))
        except UnicodeDecodeError:
            yield ImportErrorRow(path.name, "manifest is not UTF-8 text")
        except csv.Error as exc:
            yield ImportErrorRow(f"{path.name}:{reader.line_num}", f"CSV error: {exc}")
