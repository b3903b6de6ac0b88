"""Exports: long-format ratings, per-item aggregates and report tables, safe to open in a spreadsheet."""
from __future__ import annotations

import csv
import io

import pytest
from django.contrib.auth.models import User
from django.test import Client

from annotations.exports import RATING_COLUMNS, csv_cell, csv_render
from annotations.models import Rating, Study
from annotations.reports import study_report_build
from tests.annotations.test_reports import study_make
from tests.inference.test_output import CR_ATTACK, assert_no_line_starts_a_formula


def _rows(body: bytes | str) -> list[dict[str, str]]:
    text = body.decode() if isinstance(body, bytes) else body
    return list(csv.DictReader(io.StringIO(text)))


@pytest.mark.parametrize(("raw", "expected"), [
    ("=SUM(A1:A9)", "'=SUM(A1:A9)"),
    ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
    ("-1+1", "'-1+1"),
    ("@SUM(1)", "'@SUM(1)"),
    ("\t=1", "'\t=1"),
    ("\rfoo", "'\rfoo"),
    ("-0.25", "-0.25"),  # a plain number stays a number
    ("+3", "+3"),
    ("-1e-3", "-1e-3"),
    ("a smiling person", "a smiling person"),
    (-0.125, -0.125),
    (3, 3),
    (None, ""),
])
def test_it_neutralises_formulas_but_keeps_numbers(raw: object, expected: object) -> None:
    assert csv_cell(raw) == expected


def test_it_renders_csv_that_round_trips_hostile_text() -> None:
    body = csv_render([{"a": '=HYPERLINK("http://x","click")', "b": -2}], ["a", "b"])
    (row,) = _rows(body)
    assert row == {"a": "'=HYPERLINK(\"http://x\",\"click\")", "b": "-2"}


@pytest.fixture
def study(researcher: User) -> Study:
    return study_make(owner=researcher, items=10)


@pytest.fixture
def rita(client: Client, researcher: User) -> Client:
    client.force_login(researcher)
    return client


def test_it_exports_ratings_in_long_format_with_annotator_ids(study: Study, rita: Client) -> None:
    rating = Rating.objects.filter(item__study=study, item__kind="normal").first()
    rating.comment = "=cmd|' /C calc'!A0"
    rating.save()
    response = rita.get(f"/research/studies/{study.slug}/exports/ratings.csv")
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="{study.slug}-ratings.csv"'
    rows = _rows(response.content)
    assert list(rows[0]) == RATING_COLUMNS
    assert len(rows) == 5 * 11  # 5 annotators x (10 items + 1 attention item)
    hostile = next(r for r in rows if r["rating_id"] == str(rating.pk))
    assert hostile["comment"] == "'=cmd|' /C calc'!A0"
    assert hostile["annotator_id"] == str(rating.annotator_id)
    excluded = {r["annotator_id"] for r in rows if r["annotator_excluded"] == "True"}
    assert len(excluded) == 1
    assert {r["item_kind"] for r in rows} == {"normal", "attention"}


def test_it_exports_per_item_aggregates_with_and_without_excluded(study: Study, rita: Client) -> None:
    response = rita.get(f"/research/studies/{study.slug}/exports/items.csv")
    rows = [r for r in _rows(response.content) if r["kind"] == "normal"]
    assert len(rows) == 10
    assert all(r["n_all"] == "5" and r["n_included"] == "4" for r in rows)
    assert any(r["mean_all"] != r["mean_included"] for r in rows)
    assert {r["model"] for r in rows} == {"va-descriptions-smollm2", "va-descriptions-lexicon"}
    # The negative cosine of the first item is still a number a spreadsheet can sum.
    first = min(rows, key=lambda r: int(r["item_id"]))
    assert float(first["sim:word/glove-6b-50d"]) == pytest.approx(-0.125)


def test_it_downloads_the_report_as_csv_json_and_html(study: Study, rita: Client) -> None:
    study_report_build(study=study, resamples=100)
    base = f"/research/studies/{study.slug}/reports/1/report"
    table = _rows(rita.get(f"{base}.csv").content)
    alpha = next(r for r in table if r["subset"] == "included" and r["statistic"] == "alpha_ordinal")
    assert float(alpha["ci_low"]) <= float(alpha["value"]) <= float(alpha["ci_high"])
    assert {r["statistic"] for r in table} >= {"spearman", "kendall", "pearson", "mean_rating", "rating_count",
                                               "split_half_spearman", "ICC(2,k)", "ceiling_sqrt_reliability",
                                               "delta_spearman", "delta_pearson"}
    payload = rita.get(f"{base}.json").json()
    assert payload["version"] == 1 and set(payload["analyses"]) == {"all", "included"}
    html = rita.get(f"{base}.html")
    assert html["Content-Type"].startswith("text/html") and b"<svg" in html.content
    assert rita.get(f"{base}.pdf").status_code == 404


def test_it_exports_a_comment_with_a_bare_cr_attack_as_one_neutralised_cell(study: Study, rita: Client) -> None:
    rating = Rating.objects.filter(item__study=study, item__kind="normal").first()
    rating.comment = CR_ATTACK
    rating.save()
    response = rita.get(f"/research/studies/{study.slug}/exports/ratings.csv")
    body = response.content.decode()
    assert_no_line_starts_a_formula(body)
    rows = _rows(body)
    assert len(rows) == 5 * 11  # the CRs did not split the row
    hostile = next(r for r in rows if r["rating_id"] == str(rating.pk))
    assert hostile["comment"] == "nice photo\r'=cmd|' /C calc'!A0\r'@SUM(1+1)"


def test_it_neutralises_llm_output_in_items_csv(study: Study, rita: Client) -> None:
    first, second = study.items.filter(kind="normal").order_by("id")[:2]
    first.text = "=1+1"
    first.save()
    second.text = "a calm face\n=1+1"
    second.save()
    body = rita.get(f"/research/studies/{study.slug}/exports/items.csv").content.decode()
    assert_no_line_starts_a_formula(body)
    texts = {r["item_id"]: r["text"] for r in _rows(body)}
    assert texts[str(first.pk)] == "'=1+1"
    assert texts[str(second.pk)] == "a calm face\n'=1+1"
