"""Writing results for people: the project's one CSV writer (every CSV a user can download or a command
writes goes through here), Markdown tables and matplotlib SVG, shared by the experiment runner
(`inference.services.experiments`) and the study reports (`annotations.reports`).

Functions:
- `csv_cell(value)` — one cell made safe for a spreadsheet (rules below); numbers stay numbers.
- `csv_write(handle, rows, columns)` — header row plus one line per row dict to an open text handle
  (opened with `newline=""`); keys not in `columns` are ignored, missing ones are written empty.
- `csv_render(rows, columns)` — the same, returned as a string (HTTP downloads).
- `csv_file_write(path=, rows=, columns=None)` — the same into a file (columns default to
  `csv_columns(rows)`); returns the path.
- `csv_columns(rows)` — the union of the rows' keys in first-seen order, for tables whose columns
  come from the data.

Why (OWASP "CSV Injection"): a spreadsheet runs a cell that starts with `=`, `+`, `-`, `@`, tab or
carriage return as a formula, and LLM output, participant comments and config names all reach our
CSVs. Rules:
1. Every text cell is quoted (`QUOTE_NONNUMERIC`: Python 3.11 has no `QUOTE_STRINGS`; numbers are
   written bare so they stay numbers). A CR or LF inside a quoted cell is part of the cell for any
   RFC 4180 reader, so a bare CR can no longer start a new row.
2. A text cell whose start, or whose text after any CR or LF, begins with one of those characters
   (spaces before it included: some readers trim them) gets an apostrophe inserted there. This
   protects readers that do treat CR/LF inside quotes as a line break: no line of the file starts
   with a formula. The spreadsheet shows the apostrophe-prefixed text and runs nothing.
3. A text cell that is exactly a plain decimal number (`-0.25`, `+3`, `-1e-3`) is left alone: a
   cell that parses as a number cannot be a formula, and numeric columns stay usable.
The header row is always written, even for no rows, so a reader never mistakes data for headers.
"""
from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TextIO

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
# A position at the start of the cell or right after a CR/LF, followed (after optional spaces) by a
# formula trigger. Zero-width, so "\r\n=x" gets one apostrophe, after the LF.
_FORMULA_START = re.compile(r"(?:^|(?<=[\r\n]))(?= *[=+\-@\t\r])")


def csv_cell(value: Any) -> Any:
    """A cell that a spreadsheet shows as data and never runs (see the module docstring)."""
    if value is None:
        return ""
    if isinstance(value, bool | int | float):
        return value
    text = str(value)
    if _PLAIN_NUMBER.fullmatch(text):
        return text
    return _FORMULA_START.sub("'", text)


def csv_columns(rows: Iterable[dict[str, Any]]) -> list[str]:
    """Every key of every row, in first-seen order."""
    return list(dict.fromkeys(key for row in rows for key in row))


def csv_write(handle: TextIO, rows: Iterable[dict[str, Any]], columns: Sequence[str]) -> None:
    writer = csv.writer(handle, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")
    # Column names can come from data (embedder names, labels): they get the same treatment.
    writer.writerow([csv_cell(str(column)) for column in columns])
    for row in rows:
        writer.writerow([csv_cell(row.get(column)) for column in columns])


def csv_render(rows: Iterable[dict[str, Any]], columns: Sequence[str]) -> str:
    out = io.StringIO()
    csv_write(out, rows, columns)
    return out.getvalue()


def csv_file_write(*, path: Path, rows: list[dict[str, Any]], columns: Sequence[str] | None = None) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv_write(handle, rows, csv_columns(rows) if columns is None else columns)
    return path


# --- Markdown -------------------------------------------------------------------------------------

def number_format(value: Any, *, missing: str = "", digits: int = 3) -> str:
    """Floats to `digits` decimals, None to `missing`, anything else as text."""
    if value is None:
        return missing
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def markdown_table(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    if not rows:
        return "_(no rows)_\n"
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [number_format(row.get(c)).replace("|", "\\|").replace("\n", " ") for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# --- matplotlib -----------------------------------------------------------------------------------

def pyplot() -> Any:
    """matplotlib.pyplot on the headless Agg backend with reproducible, text-keeping SVG output.

    Imported on first use: the web process renders plots only when a report or experiment is built.
    matplotlib writes text into SVG escaped (&, <, >), so names from the database cannot inject
    markup; `svg.fonttype = none` keeps labels as text and `svg.hashsalt` makes ids reproducible.
    """
    import matplotlib

    matplotlib.use("Agg")  # workers and CI have no display
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "affect-eval", "font.size": 9})
    return plt


def figure_svg(fig: Any) -> str:
    """The figure as an inline `<svg>` element (no XML prolog), closed afterwards."""
    plt = pyplot()
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    svg = buf.getvalue()
    return svg[svg.index("<svg"):]  # drop the XML prolog and DOCTYPE so it can sit inside HTML


def figure_save(fig: Any, path: Path) -> Path:
    """The figure as an SVG file, closed afterwards."""
    plt = pyplot()
    fig.tight_layout()
    fig.savefig(path, format="svg")
    plt.close(fig)
    return path
