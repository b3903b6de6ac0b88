"""Creating studies: the service, the `create_study` command and the admin form."""
from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from annotations.models import Item, Study
from annotations.services.studies import StudyInvalid, study_check_items_add, study_create
from inference.models import Generation, PromptTemplate

from .conftest import SECRET_CONFIG

pytestmark = pytest.mark.django_db


def create(**overrides: object) -> Study:
    args: dict = {"name": "S", "dataset": "faces", "config_names": [SECRET_CONFIG], "prompt_names": ["describe"]}
    args.update(overrides)
    return study_create(**args)


def test_it_creates_items_from_ok_describe_generations_only(make_generations) -> None:
    ok = make_generations(3)
    make_generations(1, status=Generation.Status.UNPARSEABLE)
    make_generations(1, task=PromptTemplate.Task.CATEGORIZE, prompt_name="categorize-basic")
    study = create(k=2)
    assert sorted(study.items.values_list("generation_id", flat=True)) == [g.id for g in ok]
    assert list(study.items.values_list("text", flat=True))[0] == ok[0].text
    assert study.selection == {"dataset": "faces", "configs": [SECRET_CONFIG], "prompts": ["describe"],
                               "task": "describe", "statuses": ["ok"]}
    assert (study.raters_per_item, study.status, study.scale_labels[0]) == (2, "draft", "Not at all")


def test_it_snapshots_categorize_labels_when_asked_for_that_task(make_generations) -> None:
    make_generations(2, task=PromptTemplate.Task.CATEGORIZE, prompt_name="categorize-basic")
    study = create(prompt_names=["categorize-basic"], task="categorize")
    assert set(study.items.values_list("text", flat=True)) == {"happiness"}


def test_it_adds_attention_items_with_their_accepted_range(make_generations) -> None:
    make_generations(2)
    study = create(attention_items=["Pick 1 here.|1|1", {"text": "Gold", "expected_min": 4, "expected_max": 5,
                                                         "kind": "gold"}])
    checks = study.items.exclude(kind=Item.Kind.NORMAL).order_by("kind")
    assert [(c.kind, c.text, c.expected_min, c.expected_max) for c in checks] == [
        ("attention", "Pick 1 here.", 1, 1), ("gold", "Gold", 4, 5)]
    assert study_check_items_add(study=study, check_items=["Pick 1 here.|1|1"]) == 0  # re-run adds nothing


@pytest.mark.parametrize("overrides, message", [
    ({"config_names": ["no-such-config"]}, "unknown LLM config"),
    ({"prompt_names": ["nope"]}, "unknown prompt"),
    ({"dataset": "missing"}, "dataset 'missing' does not exist"),
    ({"k": 0}, "at least 1"),
    ({"scale_min": 5, "scale_max": 1}, "must be greater"),
    ({"scale_min": 0, "scale_max": 20}, "at most 11"),
    ({"scale_labels": ["a", "b"]}, "2 scale labels given for 5"),
    ({"attention_items": ["Pick 9|9|9"]}, "must lie within the scale"),
    ({"attention_items": ["no range"]}, "expected 'TEXT|MIN|MAX'"),
    ({"failed_check_action": "explode"}, "failed_check_action"),
    ({"name": "  "}, "needs a name"),
    ({"task": "dance"}, "task 'dance'"),
    # These reached the database (DataError) or numpy (ValueError) before.
    ({"name": "x" * 201}, "at most 200"),
    ({"slug": "s" * 101}, "at most 100"),
    ({"max_failed_checks": 2**70}, "too large"),
    ({"min_median_seconds": float("nan")}, "must be a number of seconds"),
    ({"pay_per_hour": "NaN"}, "pay per hour cannot be negative"),
    ({"pay_per_hour": "1e20"}, "below 1,000,000"),
    ({"kind": "pairwise", "design_seed": -1}, "design seed must be 0 or more"),
])
def test_it_rejects_an_invalid_study_and_creates_nothing(make_generations, overrides, message) -> None:
    make_generations(2)
    with pytest.raises(StudyInvalid, match=message):
        create(**overrides)
    assert not Study.objects.exists() and not Item.objects.exists()


def test_it_refuses_an_empty_selection(make_generations) -> None:
    make_generations(2, status=Generation.Status.ERROR)
    with pytest.raises(StudyInvalid, match="no describe generations"):
        create()


def test_it_refuses_a_duplicate_slug(make_generations) -> None:
    make_generations(1)
    create(slug="one")
    with pytest.raises(StudyInvalid, match="already exists"):
        create(slug="one")


def test_it_creates_a_study_from_the_command(make_generations, tmp_path, capsys, researcher) -> None:
    make_generations(4)
    checks = tmp_path / "checks.json"
    checks.write_text(json.dumps([{"text": "Gold item", "expected_min": 4, "expected_max": 5, "kind": "gold"}]))
    consent = tmp_path / "consent.txt"
    consent.write_text("We store anonymous ratings.")
    call_command("create_study", "--name", "Cmd study", "--slug", "cmd", "--dataset", "faces", "--config",
                 SECRET_CONFIG, "--prompt", "describe", "--k", "4", "--attention", "Pick 2.|2|2",
                 "--checks-file", str(checks), "--consent-file", str(consent), "--show-va", "--no-image",
                 "--failed-check-action", "end", "--min-median-seconds", "1.5", "--open", "--owner", researcher.username,
                 "--items-per-participant", "20", "--expected-minutes", "10", "--pay-per-hour", "9")
    study = Study.objects.get(slug="cmd")
    assert (study.raters_per_item, study.status, study.show_va, study.show_image) == (4, "open", True, False)
    assert (study.failed_check_action, study.min_median_seconds, study.consent_text) == (
        "end", 1.5, "We store anonymous ratings.")
    assert study.items.filter(kind="normal").count() == 4 and study.items.exclude(kind="normal").count() == 2
    assert (study.owner, study.items_per_participant, study.expected_minutes, str(study.pay_per_hour)) == (
        researcher, 20, 10, "9.00")
    assert study.completion_url_template == "https://app.prolific.com/submissions/complete?cc={code}"
    assert "study cmd: 4 items, 2 check items, k=4, open, owner rita-researcher" in capsys.readouterr().out


def test_it_tops_up_an_existing_study_when_rerun(make_generations, capsys, researcher) -> None:
    make_generations(2)
    args = ["create_study", "--name", "Cmd", "--slug", "cmd", "--dataset", "faces", "--owner", researcher.username]
    call_command(*args)
    make_generations(3)
    call_command(*args)
    assert Study.objects.get(slug="cmd").items.count() == 5
    assert "3 new items" in capsys.readouterr().out
    call_command(*args)
    assert Study.objects.get(slug="cmd").items.count() == 5


@pytest.mark.parametrize("extra, message", [
    (["--config", "ghost"], "unknown LLM config"),
    (["--attention", "oops"], "TEXT|MIN|MAX"),
    (["--consent-file", "/nonexistent/consent.txt"], "cannot read the consent file"),
    (["--owner", "ghost"], "--owner: no user 'ghost'"),
    (["--collaborator", "ghost"], "--collaborator: no user 'ghost'"),
    (["--items-per-participant", "0"], "items per participant must be at least 1"),
    (["--completion-url", "javascript:alert(1)"], "not an http"),
    (["--completion-url", "https://x.org/?cc={code}&u={user}"], "no other"),
    (["--pay-per-hour", "-3"], "cannot be negative"),
    (["--completion-url", "https://x.org/?cc={code}&pad=" + "p" * 600], "at most 500"),  # was a DataError
])
def test_it_reports_bad_command_arguments_clearly(make_generations, extra, message, researcher) -> None:
    make_generations(1)
    with pytest.raises(CommandError, match=message):
        call_command("create_study", "--name", "Bad", "--dataset", "faces", "--owner", researcher.username, *extra)
    assert not Study.objects.exists()


def test_it_requires_an_owner_for_a_new_study(make_generations) -> None:
    make_generations(1)
    with pytest.raises(CommandError, match="--owner USERNAME is required"):
        call_command("create_study", "--name", "Nobody's", "--dataset", "faces")
    assert not Study.objects.exists()


def test_it_reports_a_malformed_checks_file(make_generations, tmp_path) -> None:
    make_generations(1)
    bad = tmp_path / "checks.json"
    bad.write_text("{not json")
    with pytest.raises(CommandError, match="not valid JSON"):
        call_command("create_study", "--name", "Bad", "--checks-file", str(bad))
    bad.write_bytes('[{"text": "Tick 3 für", "expected_min": 3, "expected_max": 3}]'.encode("latin-1"))
    with pytest.raises(CommandError, match="cannot read the check items file"):  # was a UnicodeDecodeError
        call_command("create_study", "--name", "Bad", "--checks-file", str(bad))
    assert not Study.objects.exists()


def test_the_admin_sends_study_creation_to_the_study_page(make_generations, admin_user) -> None:
    """One creation service (items, designs, checks, owner): the admin's add page only points to it."""
    make_generations(3)
    client = Client()
    client.force_login(admin_user)
    for response in (client.get("/admin/annotations/study/add/"),
                     client.post("/admin/annotations/study/add/", {"name": "Admin study", "slug": "admin-study"})):
        assert response.status_code == 302 and response["Location"] == "/studies/new/"
    assert not Study.objects.exists()
    page = client.get("/studies/new/")
    assert page.status_code == 200 and b"Studies are created on the study page" in page.content


def test_the_admin_still_opens_a_study_for_editing(make_generations, admin_user) -> None:
    make_generations(3)
    study = study_create(name="Edit me", dataset="faces", config_names=[SECRET_CONFIG], prompt_names=["describe"],
                         owner=admin_user)
    client = Client()
    client.force_login(admin_user)
    page = client.get(f"/admin/annotations/study/{study.pk}/change/")
    assert page.status_code == 200 and b"Edit me" in page.content
