"""Dataset importers: each format yields `SampleRecord`s or `RowError`s; `services.imports` stores them.

Formats: `folder` (one sub-folder per class), `emotic` (Annotations.mat or the common CSV conversion),
`manifest` (CSV or JSONL). A bad row is reported with its file:line and reason; the rest still import.
"""
from __future__ import annotations

from .base import ImportErrorRow, SampleRecord, normalize_label
from .emotic import iter_emotic
from .folder import iter_folder
from .manifest import iter_manifest

FORMATS = {"folder": iter_folder, "emotic": iter_emotic, "manifest": iter_manifest}

__all__ = ["FORMATS", "ImportErrorRow", "SampleRecord", "iter_emotic", "iter_folder", "iter_manifest",
           "normalize_label"]
