"""Reports and exports of best–worst and pairwise studies: human scores, CIs, metric agreement, raw choices."""
from __future__ import annotations

import csv
import io
import json
import re

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from annotations.exports_choices import CHOICE_COLUMNS, study_choice_rows
from annotations.models import Rating, Study
from annotations.reports import study_report_build
from annotations.services.studies import study_create
from inference.models import Similarity

from .comparative_data import choices_simulate, make_systems_on_faces, similarities_add

pytestmark = pytest.mark.django_db


def _study(kind: str, owner, *, systems: int, k: int, slug: str) -> Study:
    generations = make_systems_on_faces(samples=4, systems=systems)
    # "sentence" tracks the quality closely, "word" barely.
    similarities_add(generations, noise={"sentence": 0.05, "word": 2.0})
    return study_create(name=f"{kind} report", slug=slug, dataset="faces", config_names=[], prompt_names=[],
                        k=k, open_now=True, kind=kind, owner=owner)


def test_it_reports_bws_scores_with_intervals_reliability_and_metric_agreement(researcher) -> None:
    study = _study(Study.Kind.BWS, researcher, systems=6, k=3, slug="bws-report")
    assert choices_simulate(study, annotators=6, noise=1.0) == 4 * 12 * 3
    report = study_report_build(study=study, user=researcher, resamples=100)
    a = report.results["analyses"]["included"]
    c = a["comparative"]
    assert c["kind"] == "bws" and c["units"] == 48 and c["choices"] == 144
    systems = {row["system"].split(" · ")[0]: row for row in c["systems"]}
    assert systems["secret-system-5"]["counting"] > systems["secret-system-0"]["counting"]
    assert systems["secret-system-5"]["counting_ci"][0] > systems["secret-system-0"]["counting_ci"][1]
    assert systems["secret-system-5"]["bradley_terry"] > systems["secret-system-0"]["bradley_terry"]
    assert c["split_half"]["spearman_brown"] > 0.5
    agreement = {g["metric"]: g for g in c["agreement"]}
    sentence = next(g for name, g in agreement.items() if name.startswith("sentence"))
    word = next(g for name, g in agreement.items() if name.startswith("word"))
    assert sentence["ci_low"] > 0.6 and sentence["pairs"] == 144 * 5
    assert sentence["agreement"] > word["agreement"]
    # The metric-vs-human section takes the counting score as the human score of each description.
    embedders = {e["family"]: e for e in a["embedders"]}
    assert embedders["sentence"]["correlations"]["spearman"]["r"] > 0.7
    assert a["compared_items"] == 24
    assert "with the best–worst score (%best − %worst) over 24 descriptions" in a["headline"]
    assert a["grouped"] and a["system_level"]
    html = report.html
    assert "Metric agreement with the raw choices" in html and "Split-half reliability (K&amp;M" in html
    assert "Krippendorff" not in html.split("<section id=\"analysis-included\">")[1].split("</section>")[0]
    csv_body = Client()
    csv_body.force_login(researcher)
    table = csv_body.get(f"/research/studies/{study.slug}/reports/1/report.csv").content.decode()
    assert "choice_agreement" in table and "system_counting" in table and "split_half_km" in table


def test_it_reports_a_pairwise_study_with_bradley_terry(researcher) -> None:
    study = _study(Study.Kind.PAIRWISE, researcher, systems=4, k=2, slug="pair-report")
    choices_simulate(study, annotators=3, noise=0.8, seed=1)
    report = study_report_build(study=study, user=researcher, resamples=100)
    c = report.results["analyses"]["included"]["comparative"]
    assert c["kind"] == "pairwise" and c["choices"] == 4 * 6 * 2
    by_system = sorted(c["systems"], key=lambda row: row["bradley_terry"])
    assert by_system[-1]["system"].startswith("secret-system-3")
    assert all(d["bt_ci"][0] <= d["bradley_terry"] <= d["bt_ci"][1] for d in c["descriptions"])
    assert "Bradley–Terry" in report.html


def test_it_exports_raw_choices_in_long_format_and_scores(researcher, outsider) -> None:
    study = _study(Study.Kind.BWS, researcher, systems=4, k=1, slug="bws-export")
    choices_simulate(study, annotators=1)
    rows = study_choice_rows(study=study)
    rating = Rating.objects.order_by("id").first()
    mine = [r for r in rows if r["rating_id"] == rating.pk]
    assert [r["position"] for r in mine] == [1, 2, 3, 4]
    assert [r["option_id"] for r in mine] == rating.shown_order
    assert sorted(r["chosen"] for r in mine) == ["", "", "best", "worst"]
    client = Client()
    client.force_login(researcher)
    body = client.get(f"/research/studies/{study.slug}/exports/choices.csv").content.decode()
    parsed = list(csv.DictReader(io.StringIO(body)))
    assert list(parsed[0]) == CHOICE_COLUMNS and len(parsed) == len(rows)
    assert "sim-0" not in body  # no platform id in the raw-choice export: the study's pseudonym
    assert parsed[0]["annotator"] and parsed[0]["annotator"] != "sim-0"
    manage = client.get(f"/studies/{study.slug}/manage/").content.decode()
    assert "choices.csv" in manage and "scores.csv" in manage and "Best–worst scaling: each item below" in manage
    scores = list(csv.DictReader(io.StringIO(
        client.get(f"/research/studies/{study.slug}/exports/scores.csv").content.decode())))
    assert len(scores) == 16 and {"counting", "bradley_terry", "bt_ci_low"} <= set(scores[0])
    other = Client()
    other.force_login(outsider)
    assert other.get(f"/research/studies/{study.slug}/exports/choices.csv").status_code == 404


def test_it_exports_a_header_when_nothing_was_chosen_yet(researcher) -> None:
    study = _study(Study.Kind.PAIRWISE, researcher, systems=3, k=1, slug="empty")
    client = Client()
    client.force_login(researcher)
    body = client.get(f"/research/studies/{study.slug}/exports/choices.csv").content.decode()
    assert list(csv.reader(io.StringIO(body))) == [CHOICE_COLUMNS]
    report = study_report_build(study=study, user=researcher, resamples=50)
    assert report.results["analyses"]["included"]["headline"] == "No comparative choices yet."


def test_it_meta_evaluates_metrics_on_an_exported_choices_file(researcher, tmp_path, capsys) -> None:
    study = _study(Study.Kind.BWS, researcher, systems=6, k=2, slug="bws-cli")
    choices_simulate(study, annotators=2)
    client = Client()
    client.force_login(researcher)
    choices = tmp_path / "choices.csv"
    choices.write_text(client.get(f"/research/studies/{study.slug}/exports/choices.csv").content.decode())
    scores = tmp_path / "scores.csv"
    with scores.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["unit", "metric", "score", "group"])
        for sim in Similarity.objects.all():
            writer.writerow([sim.generation_id, sim.embedder_family, sim.cosine, sim.generation.va_estimate.sample_id])
    call_command("meta_eval", "--choices", str(choices), "--scores", str(scores), "--bootstrap", "100", "--json")
    result = json.loads(capsys.readouterr().out)
    assert result["items"] == 24 and "grouped" in result
    assert result["choice_agreement"]["sentence"]["agreement"] > result["choice_agreement"]["word"]["agreement"]
    assert result["metrics"]["sentence"]["spearman"]["r"] > 0.7
    call_command("meta_eval", "--choices", str(choices), "--scores", str(scores), "--bootstrap", "50")
    assert "agreement with the raw choices" in capsys.readouterr().out


@pytest.mark.parametrize("body,message", [
    ("choice,description\n1,a\n", "missing column(s) chosen"),
    ("choice,description,chosen\n1,a,best\n1,b,maybe\n", ":3: chosen 'maybe'"),
    ("choice,description,chosen\n1,a,best\n1,b,best\n", ":3: choice '1' has two best"),
    ("choice,description,chosen\n1,a,best\n1,b,\n", "lacks a best/preferred or a worst/other"),
    ("choice,description,chosen\n", "no choices"),
])
def test_it_refuses_a_bad_choices_file_with_file_and_line(tmp_path, body, message) -> None:
    choices = tmp_path / "c.csv"
    choices.write_text(body)
    scores = tmp_path / "s.csv"
    scores.write_text("unit,metric,score\na,m,1\nb,m,2\n")
    with pytest.raises(CommandError, match=re.escape(message)):
        call_command("meta_eval", "--choices", str(choices), "--scores", str(scores))


def test_the_token_api_serves_choices_and_scores_to_the_owner_only(researcher, outsider) -> None:
    from annotations.services.tokens import api_token_create

    study = _study(Study.Kind.BWS, researcher, systems=4, k=1, slug="bws-api")
    choices_simulate(study, annotators=1)
    key = api_token_create(user=researcher)[1]
    client = Client()
    choices = client.get(f"/research/api/studies/{study.slug}/choices", HTTP_AUTHORIZATION=f"Bearer {key}").json()
    assert choices["kind"] == "bws" and choices["columns"] == CHOICE_COLUMNS
    assert choices["choices"] == json.loads(json.dumps(study_choice_rows(study=study), default=str))
    scores = client.get(f"/research/api/studies/{study.slug}/scores", HTTP_AUTHORIZATION=f"Bearer {key}").json()
    assert len(scores["scores"]) == len({r["generation_id"] for r in choices["choices"]})
    # One annotator, 4 descriptions per sample: each description is in one unit, so no counting interval
    # (Student's t over the units that showed it needs 2); more units give one around the score.
    assert all(r["counting_ci_low"] is None and r["counting_ci_high"] is None if r["shown"] < 2
               else r["counting_ci_low"] <= r["counting"] <= r["counting_ci_high"] for r in scores["scores"])
    other = api_token_create(user=outsider)[1]
    for route in ("choices", "scores"):
        response = client.get(f"/research/api/studies/{study.slug}/{route}", HTTP_AUTHORIZATION=f"Bearer {other}")
        assert response.status_code == 404
        assert client.get(f"/research/api/studies/{study.slug}/{route}").status_code == 401


def test_a_system_without_a_counting_interval_shows_a_dash_not_empty_brackets() -> None:
    # A system shown in only one of several samples: Student's t over samples needs 2, so system_scores gives
    # counting_ci [None, None] (a list, so truthy); the table must not print "[, ]" for it.
    from django.template.loader import render_to_string

    from annotations import comparative as C

    choices, groups, systems = [], {}, {}
    for s, members in (("s1", "ABCD"), ("s2", "ACDE"), ("s3", "ACDE")):
        items = [f"{m}{s}" for m in members]
        groups.update(dict.fromkeys(items, s))
        systems.update({item: m for item, m in zip(items, members, strict=True)})
        for u in range(2):
            choices.append(C.Choice(unit=f"{s}-{u}", shown=tuple(items), best=items[u], worst=items[3 - u]))
    rows = {r["system"]: r for r in C.system_scores(choices, system_of=systems, groups=groups, resamples=20).rows()}
    assert rows["B"]["counting_ci"] == [None, None] and rows["A"]["counting_ci"][0] is not None
    c = {"kind": "bws", "choices": len(choices), "units": 6, "bt_resamples": 20, "descriptions": [], "agreement": [],
         "split_half": {"spearman_brown": None, "reason": "few"}, "systems": list(rows.values())}
    html = render_to_string("annotations/_report_comparative.html", {"c": c})
    row_b = re.search(r"<tr><td>B</td>.*?</tr>", html, re.S).group(0)
    assert "[, ]" not in row_b and "—" in row_b
