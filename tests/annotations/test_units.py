"""Best–worst and pairwise studies: units built from the design, judged on the page, checks and assignment."""
from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from annotations.models import Annotator, Item, Rating, Study, UnitOption
from annotations.services.studies import StudyInvalid, study_create
from annotations.services.units import gold_unit_parse, unit_display_order
from inference.models import Generation

from .comparative_data import SECRET_MODEL, SYSTEM_PREFIX, make_systems_on_faces

pytestmark = pytest.mark.django_db


@pytest.fixture
def systems_on_faces(db) -> Callable[..., list[Generation]]:
    return make_systems_on_faces


def comparative_study(kind: str, *, slug: str = "cmp", k: int = 2, **extra) -> Study:
    return study_create(name=f"{kind} study", slug=slug, dataset="faces", config_names=[], prompt_names=[],
                        k=k, open_now=True, kind=kind, **extra)


def join(study: Study, worker: str) -> Client:
    client = Client()
    assert client.get(f"/s/{study.slug}/join", {"PROLIFIC_PID": worker}).status_code == 302
    client.post(f"/s/{study.slug}/consent", {"agree": "on"})
    return client


def current_unit(client: Client, study: Study) -> tuple[str, str]:
    response = client.get(f"/s/{study.slug}/")
    if response.status_code != 302:
        return "", response.content.decode()  # a page saying nothing is left
    location = response["Location"]
    return location, client.get(location).content.decode() if "/a/" in location else ""


def page_option_ids(html: str, name: str = "best") -> list[int]:
    return [int(v) for v in re.findall(rf'name="{name}" value="(\d+)"', html)]


def test_it_builds_bws_units_of_four_descriptions_of_one_face(systems_on_faces) -> None:
    systems_on_faces(samples=3, systems=8, short=3)
    study = comparative_study(Study.Kind.BWS)
    units = list(study.items.filter(kind=Item.Kind.NORMAL).prefetch_related("options__generation__va_estimate"))
    assert len(units) == 3 * 16  # K&M: 2N 4-tuples per face of N = 8 descriptions
    for unit in units:
        options = list(unit.options.all())
        assert len(options) == 4
        assert len({o.generation_id for o in options}) == 4
        assert {o.generation.va_estimate.sample_id for o in options} == {unit.sample_id}
    per_description: dict[int, int] = {}
    for option in UnitOption.objects.filter(item__study=study):
        per_description[option.generation_id] = per_description.get(option.generation_id, 0) + 1
    assert set(per_description.values()) == {8}
    design = Study.objects.get(pk=study.pk).selection["design"]
    assert design["short_samples"] and list(design["short_samples"].values()) == [3]  # reported, not padded
    assert study.question.startswith("Which description matches")


def test_it_refuses_a_comparative_study_when_no_face_has_enough_descriptions(systems_on_faces) -> None:
    systems_on_faces(samples=2, systems=3)
    with pytest.raises(StudyInvalid, match="no sample has 4 or more"):
        comparative_study(Study.Kind.BWS)
    assert not Study.objects.exists()  # nothing half-created
    with pytest.raises(StudyInvalid, match="pairwise studies only"):
        comparative_study(Study.Kind.BWS, allow_ties=True)
    with pytest.raises(StudyInvalid, match="study kind"):
        comparative_study("ranking")


def test_it_records_a_best_worst_choice_from_the_page_without_revealing_systems(systems_on_faces) -> None:
    systems_on_faces(samples=2, systems=4)
    study = comparative_study(Study.Kind.BWS)
    client = join(study, "w1")
    url, html = current_unit(client, study)
    assert client.get(f"{url}image").status_code == 200  # the face of the unit's sample
    assert SYSTEM_PREFIX not in html and SECRET_MODEL not in html
    assert "Face " in html and "1–4 for the <strong>best</strong>" in html
    best_ids, worst_ids = page_option_ids(html), page_option_ids(html, "worst")
    assert len(best_ids) == 4 and best_ids == worst_ids
    assert client.post(url, {"best": best_ids[2], "worst": best_ids[0]}).status_code == 302
    rating = Rating.objects.get()
    assert (rating.best_id, rating.worst_id, rating.value) == (best_ids[2], best_ids[0], None)
    assert rating.shown_order == best_ids  # the position each description had for this annotator
    assert f"best: {rating.best.text}" in client.get(f"/s/{study.slug}/mine").content.decode()


@pytest.mark.parametrize("data,message", [
    ({"best": "", "worst": ""}, "choose the best match"),
    ({"best": "SAME", "worst": "SAME"}, "must be different descriptions"),
    ({"best": "FIRST", "worst": "999999"}, "choose the worst match"),
])
def test_it_refuses_an_incomplete_or_impossible_bws_answer_and_stores_nothing(systems_on_faces, data, message):
    systems_on_faces(samples=1, systems=4)
    study = comparative_study(Study.Kind.BWS)
    client = join(study, "w1")
    url, html = current_unit(client, study)
    first = str(page_option_ids(html)[0])
    data = {key: first if value in ("SAME", "FIRST") else value for key, value in data.items()}
    response = client.post(url, data)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Rating.objects.exists()


def test_it_shows_each_annotator_their_own_stable_order(systems_on_faces) -> None:
    systems_on_faces(samples=2, systems=8)
    study = comparative_study(Study.Kind.BWS, k=3)
    unit = study.items.filter(kind=Item.Kind.NORMAL).first()
    options = list(unit.options.all())
    orders = {tuple(o.pk for o in unit_display_order(seed=seed, item_id=unit.pk, options=options))
              for seed in range(12)}
    assert len(orders) > 3  # positions vary between annotators
    client = join(study, "w1")
    url, first = current_unit(client, study)
    assert page_option_ids(client.get(url).content.decode()) == page_option_ids(first)  # reload: same order


def test_it_records_pairwise_preferences_and_ties_only_when_offered(systems_on_faces) -> None:
    systems_on_faces(samples=1, systems=3)
    strict = comparative_study(Study.Kind.PAIRWISE, slug="strict")
    client = join(strict, "w1")
    url, html = current_unit(client, strict)
    assert "← Left" in html and "Right →" in html and "Equally good" not in html
    response = client.post(url, {"best": "tie"})
    assert response.status_code == 400 and "choose one of the two" in response.content.decode()
    left, right = page_option_ids(html)
    assert client.post(url, {"best": right}).status_code == 302
    rating = Rating.objects.get()
    assert (rating.best_id, rating.worst_id) == (right, left)

    ties = comparative_study(Study.Kind.PAIRWISE, slug="ties", allow_ties=True)
    client = join(ties, "w2")
    url, html = current_unit(client, ties)
    assert "Equally good" in html
    assert client.post(url, {"best": "tie"}).status_code == 302
    tie = Rating.objects.get(item__study=ties)
    assert (tie.best_id, tie.worst_id) == (None, None)


def test_it_gives_each_unit_to_at_most_k_annotators(systems_on_faces) -> None:
    systems_on_faces(samples=1, systems=4)  # one BWS unit
    study = comparative_study(Study.Kind.BWS, k=1)
    second = join(study, "w2")  # in before the only slot is taken
    first = join(study, "w1")
    url, html = current_unit(first, study)
    held_url, held_page = current_unit(second, study)
    assert "/a/" not in held_url and "This study is full" in held_page  # the only slot is held
    late = Client().get(f"/s/{study.slug}/join", {"PROLIFIC_PID": "w3"})
    assert late.status_code == 403 and b"This study is full" in late.content  # newcomers are turned away
    ids = page_option_ids(html)
    first.post(url, {"best": ids[0], "worst": ids[1]})
    assert Rating.objects.count() == 1 and "/a/" not in current_unit(second, study)[0]


def test_it_grades_a_gold_unit_by_its_known_best_and_worst(systems_on_faces) -> None:
    systems_on_faces(samples=1, systems=4)
    study = comparative_study(Study.Kind.BWS, k=1, gold_units=["Clearly right|ok a|ok b|Clearly wrong"],
                              failed_check_action="warn")
    gold = study.items.get(kind=Item.Kind.GOLD)
    assert [o.expected for o in gold.options.all()] == ["best", "", "", "worst"]
    clients = {worker: join(study, worker) for worker in ("good", "bad")}  # both in before k = 1 fills
    for worker, right in (("good", True), ("bad", False)):
        client = clients[worker]
        while True:
            url, html = current_unit(client, study)
            if "/a/" not in url:
                break
            texts = dict(zip(page_option_ids(html), re.findall(r'<span class="num"[^>]*>\d</span>([^<]*)</p>', html),
                             strict=True))
            by_text = {text: pk for pk, text in texts.items()}
            if "Clearly right" in by_text:
                best, worst = (by_text["Clearly right"], by_text["Clearly wrong"]) if right else (
                    by_text["Clearly wrong"], by_text["Clearly right"])
            else:
                best, worst = list(texts)[:2]
            assert client.post(url, {"best": best, "worst": worst}).status_code == 302
    assert Rating.objects.get(item=gold, annotator__external_id="good").passed_check is True
    assert Rating.objects.get(item=gold, annotator__external_id="bad").passed_check is False
    assert Annotator.objects.get(external_id="bad").failed_checks == 1


def test_it_refuses_a_malformed_gold_unit() -> None:
    with pytest.raises(StudyInvalid, match="exactly 4"):
        gold_unit_parse("a|b|c", size=4)
    with pytest.raises(StudyInvalid, match="different"):
        gold_unit_parse("a|b|b|c", size=4)


def test_it_creates_a_bws_study_from_the_command_and_reports_the_design(systems_on_faces, capsys, researcher) -> None:
    systems_on_faces(samples=2, systems=8, short=2)
    call_command("create_study", "--name", "Cmd BWS", "--slug", "cmd-bws", "--dataset", "faces", "--kind", "bws",
                 "--owner", researcher.username, "--gold-unit", "Right|a|b|Wrong")
    out = capsys.readouterr().out
    assert "Best–worst scaling design: 32 units of 4 over 16 descriptions, each in 8-8 units" in out
    assert "1 face(s) with too few descriptions left out" in out
    study = Study.objects.get(slug="cmd-bws")
    assert study.kind == "bws" and study.items.filter(kind=Item.Kind.GOLD).count() == 1
    with pytest.raises(CommandError, match="built once"):
        call_command("create_study", "--name", "Cmd BWS", "--slug", "cmd-bws", "--dataset", "faces")
    with pytest.raises(CommandError, match="exactly 2"):
        call_command("create_study", "--name", "Pairs", "--dataset", "faces", "--kind", "pairwise",
                     "--owner", researcher.username, "--gold-unit", "a|b|c")
    assert not Study.objects.filter(name="Pairs").exists()


def test_it_creates_and_edits_a_bws_study_from_the_web_form(systems_on_faces, researcher) -> None:
    systems_on_faces(samples=2, systems=5)
    client = Client()
    client.force_login(researcher)
    page = client.get("/studies/new/").content.decode()
    assert "Best–worst scaling" in page and "Pairwise choice" in page
    data = {
        "name": "Web BWS", "kind": "bws", "unit_appearances": 4, "gold_units": "Right|a|b|Wrong",
        "question": "How well does this description match the person's emotional expression?",
        "task": "describe", "statuses": ["ok"], "scale_min": 1, "scale_max": 5, "raters_per_item": 2,
        "items_per_participant": 5,
        "assignment_timeout_minutes": 20, "show_image": "on", "consent_text": "We store your choices.",
        "max_failed_checks": 0, "min_median_seconds": 0, "failed_check_action": "warn", "completion_code": "BWS-1",
        "completion_url_template": "", "early_finish": "partial", "partial_completion_code": "BWS-P",
        "pay_currency": "GBP",
    }
    response = client.post("/studies/new/", data)
    assert response.status_code == 302, response.content.decode()[-2000:]
    study = Study.objects.get()
    assert (study.kind, study.unit_appearances) == ("bws", 4)
    assert study.question.startswith("Which description matches")  # the Likert default was left in the form
    assert study.items.filter(kind=Item.Kind.NORMAL).count() == 2 * 5  # round(5 × 4 / 4) units per face
    assert study.items.filter(kind=Item.Kind.GOLD).count() == 1
    edit = client.get(f"/studies/{study.slug}/edit/").content.decode()
    assert "Right|a|b|Wrong" in edit
    response = client.post(f"/studies/{study.slug}/edit/", data | {"kind": "pairwise", "gold_units": "",
                                                                   "allow_ties": "on"})
    assert response.status_code == 302, response.content.decode()[-2000:]
    study.refresh_from_db()
    assert (study.kind, study.allow_ties) == ("pairwise", True)
    assert all(item.options.count() == 2 for item in study.items.all())
    assert study.question.startswith("Which description matches the person's emotional expression better")
    bad = client.post("/studies/new/", data | {"name": "Bad", "gold_units": "only|three|texts"})
    assert bad.status_code == 400 and "exactly 4" in bad.content.decode()
    assert not Study.objects.filter(name="Bad").exists()


def test_it_previews_a_bws_study_without_storing_anything(systems_on_faces, researcher) -> None:
    systems_on_faces(samples=1, systems=4)
    study = comparative_study(Study.Kind.BWS, owner=researcher)
    client = Client()
    client.force_login(researcher)
    page = client.get(f"/studies/{study.slug}/preview/item/1/").content.decode()
    assert "Preview:" in page and "1–4 for the <strong>best</strong>" in page
    ids = page_option_ids(page)
    assert client.get(f"/studies/{study.slug}/preview/item/1/image").status_code == 200
    same = client.post(f"/studies/{study.slug}/preview/item/1/", {"best": ids[0], "worst": ids[0]})
    assert same.status_code == 400 and "must be different descriptions" in same.content.decode()
    done = client.post(f"/studies/{study.slug}/preview/item/1/", {"best": ids[0], "worst": ids[1]})
    assert done.status_code == 302
    assert not Rating.objects.exists() and not Annotator.objects.exists()


def test_it_ends_a_participants_session_after_their_budget_of_units(systems_on_faces, researcher) -> None:
    systems_on_faces(samples=2, systems=5)
    study = comparative_study(Study.Kind.BWS, owner=researcher, items_per_participant=3, k=2)
    client = join(study, "budget")
    judged = 0
    while True:
        url, html = current_unit(client, study)
        if "/a/" not in url:
            break
        ids = page_option_ids(html)
        assert client.post(url, {"best": ids[0], "worst": ids[1]}).status_code == 302
        judged += 1
    assert judged == 3 and Rating.objects.count() == 3
    annotator = Annotator.objects.get(external_id="budget")
    assert annotator.completed_at is not None
    assert study.completion_code in client.get(f"/s/{study.slug}/done").content.decode()
