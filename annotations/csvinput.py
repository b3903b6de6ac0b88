"""Reading a researcher's CSV file (ratings, scores, choices) for the statistics commands: one rule for
"exists, is UTF-8, is not empty" and for the header, so every command reports a bad file the same way."""
from __future__ import annotations

import csv
import io
from pathlib import Path

from django.core.management.base import CommandError


def csv_input_open(path: Path, *, empty_hint: str = "") -> tuple[csv.DictReader, list[str]]:
    """A DictReader over the file and its header, stripped and lower-cased (the reader's own fieldnames stay
    as written, for error messages). Raises CommandError naming the file: missing, not UTF-8, or empty (when
    `empty_hint` says what was expected). Quoted fields may span lines (the reader sees the text unsplit)."""
    if not path.is_file():
        raise CommandError(f"{path}: no such file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CommandError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if empty_hint and not text.strip():
        raise CommandError(f"{path}: the file is empty; expected {empty_hint}")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    return reader, [h.strip().lower() for h in (reader.fieldnames or [])]
