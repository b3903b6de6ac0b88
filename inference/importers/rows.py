"""Reading a manifest row by row, so one bad row costs that row only and every error names its line.

Python's `csv` reader over a decoded file stops at the first invalid UTF-8 byte (the rest of the file
is silently lost) and, after a `csv.Error` such as an oversized cell, resumes in the middle of the
broken record (blaming the wrong line, dropping the next row). Here the file is read as bytes, each
physical line is decoded on its own, records are delimited by a small quote-aware scanner (a quoted
cell may span lines) and each record is parsed by `csv` alone. Line numbers are 1-based physical
lines; a record spanning lines is named by its first line.
"""
from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass
class RawRow:
    line: int
    cells: list[str] | None  # None when the row could not be read
    error: str = ""


def _ends_in_quotes(text: str, in_quotes: bool) -> bool:
    """Whether a CSV record is still inside a quoted cell after `text` (standard `""` escaping; a quote
    opens a quoted cell only at the start of a cell, as the csv module reads it)."""
    at_cell_start = not in_quotes
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if in_quotes:
            if ch == '"':
                if i + 1 < n and text[i + 1] == '"':
                    i += 1
                else:
                    in_quotes = False
        elif ch == '"' and at_cell_start:
            in_quotes = True
        at_cell_start = (ch == "," or ch == "\n") and not in_quotes
        i += 1
    return in_quotes


def _decoded_lines(path: Path) -> Iterator[tuple[int, str, str]]:
    """(line number, text, decode error) per physical line; invalid bytes become U+FFFD and an error."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                yield number, raw.decode("utf-8"), ""
            except UnicodeDecodeError as exc:
                yield (number, raw.decode("utf-8", errors="replace"),
                       f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})")


def csv_rows_read(path: Path) -> Iterator[RawRow]:
    """Every non-blank record of a CSV file as cells or as an error, the header record included."""
    record: list[str] = []
    start = 0
    errors: list[str] = []
    in_quotes = False
    for number, text, error in _decoded_lines(path):
        if not record:
            start = number
        record.append(text)
        if error:
            errors.append(f"line {number}: {error}" if number != start else error)
        if '"' in text or in_quotes:
            in_quotes = _ends_in_quotes(text, in_quotes)
        if in_quotes:
            continue
        row = _record_parse(start, record, errors)
        record, errors = [], []
        if row is not None:
            yield row
    if record:
        yield RawRow(start, None, f"quoted cell opened on line {start} is never closed "
                                  f"(lines {start}-{start + len(record) - 1} not read)")


def _record_parse(start: int, lines: list[str], errors: list[str]) -> RawRow | None:
    if errors:
        return RawRow(start, None, "; ".join(errors))
    if len(lines) == 1 and not lines[0].strip("\r\n"):
        return None  # a blank line, skipped as csv.DictReader does
    try:
        parsed = list(csv.reader(lines, strict=False))
    except csv.Error as exc:
        if "field limit" in str(exc):
            return RawRow(start, None, f"a cell is longer than {csv.field_size_limit()} characters")
        return RawRow(start, None, f"CSV error: {exc}")
    if len(parsed) != 1:
        return RawRow(start, None, "CSV error: line break inside an unquoted cell")
    return RawRow(start, parsed[0])

