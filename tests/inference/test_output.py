"""The one hardened CSV writer: no line of a CSV we write starts with a formula, whatever the text."""
from __future__ import annotations

import csv
import io
import re

import pytest

from inference.output import FORMULA_PREFIXES, csv_cell, csv_render, csv_write

CR_ATTACK = "nice photo\r=cmd|' /C calc'!A0\r@SUM(1+1)"


def physical_lines(body: str) -> list[str]:
    """The file as a reader that breaks lines on a bare CR, LF or CRLF sees it."""
    return re.split(r"\r\n|\r|\n", body)


def assert_no_line_starts_a_formula(body: str) -> None:
    for line in physical_lines(body):
        # A reader that ignores quoting sees the text after the opening quote.
        bare = line.lstrip('" ')
        assert not bare.startswith(FORMULA_PREFIXES), f"line starts a formula: {line!r}"


def test_it_neutralises_a_formula_after_a_bare_cr() -> None:
    body = csv_render([{"id": 1, "comment": CR_ATTACK}], ["id", "comment"])
    assert_no_line_starts_a_formula(body)
    (row,) = list(csv.DictReader(io.StringIO(body)))
    assert row == {"id": "1", "comment": "nice photo\r'=cmd|' /C calc'!A0\r'@SUM(1+1)"}


@pytest.mark.parametrize(("raw", "expected"), [
    ("ok\n=1+1", "ok\n'=1+1"),
    ("ok\r\n+1", "ok\r\n'+1"),
    ("a\n  -cmd", "a\n'  -cmd"),
    ("\r\r=x", "'\r'\r'=x"),
    (" =1+1", "' =1+1"),
    ("line one\nline two", "line one\nline two"),
    ("-0.25", "-0.25"),
])
def test_it_neutralises_every_line_of_a_cell(raw: str, expected: str) -> None:
    assert csv_cell(raw) == expected


def test_it_quotes_every_text_field_and_leaves_numbers_bare() -> None:
    body = csv_render([{"a": "plain", "b": 2, "c": -0.5, "d": None}], ["a", "b", "c", "d"])
    assert body == '"a","b","c","d"\n"plain",2,-0.5,""\n'


def test_it_always_writes_the_header_row() -> None:
    out = io.StringIO()
    csv_write(out, [], ["x", "=y"])
    assert out.getvalue() == '"x","\'=y"\n'
