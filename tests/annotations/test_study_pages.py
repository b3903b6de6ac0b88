"""The researcher's study pages without the admin: create, edit while draft, duplicate, open/pause/close,
and the manage page (codes, URLs, per-item progress, times, cost, exclusions, links)."""
from __future__ import annotations

import pytest
from django.test import Client

from annotations.models import Annotator, Item, Study
from inference.models import LLMConfig

from .conftest import SECRET_CONFIG
from .test_views import rate_through

pytestmark = pytest.mark.django_db


def form_data(**overrides: object) -> dict:
    data = {
        "name": "Web study", "dataset": "", "configs": [LLMConfig.objects.get(name=SECRET_CONFIG).pk],
        "prompts": ["describe"], "task": "describe", "statuses": ["ok"], "question": "How well does it fit?", "scale_min": 1,
        "scale_max": 5, "scale_labels": "", "raters_per_item": 2, "items_per_participant": 3,
        "assignment_timeout_minutes": 20, "show_image": "on", "instructions": "Read carefully.",
        "consent_text": "We store your ratings.", "check_items": "Choose 1 here.|1|1\ngold: Gold text|4|5",
        "max_failed_checks": 1, "min_median_seconds": 0, "failed_check_action": "warn",
        "completion_code": "WEB-1", "completion_url_template": "https://app.prolific.com/submissions/complete?cc={code}",
        "early_finish": "partial", "partial_completion_code": "WEB-PART", "max_participants": "",
        "expected_minutes": 8, "pay_per_hour": "9.00", "pay_currency": "GBP",
    }
    data.update(overrides)
    return data


@pytest.fixture
def rita(researcher) -> Client:
    client = Client()
    client.force_login(researcher)
    return client


def test_it_creates_a_study_from_the_web_form(make_generations, rita, researcher) -> None:
    make_generations(5)
    assert "Prolific" in rita.get("/studies/new/").content.decode()
    response = rita.post("/studies/new/", form_data())
    study = Study.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/studies/{study.slug}/manage/"
    assert (study.owner, study.status, study.raters_per_item, study.items_per_participant) == (
        researcher, "draft", 2, 3)
    assert (study.completion_code, study.partial_completion_code, str(study.pay_per_hour)) == (
        "WEB-1", "WEB-PART", "9.00")
    assert study.items.filter(kind="normal").count() == 5
    assert sorted(study.items.exclude(kind="normal").values_list("kind", "expected_min")) == [
        ("attention", 1), ("gold", 4)]
    assert study.selection["configs"] == [SECRET_CONFIG]


@pytest.mark.parametrize(("overrides", "message"), [
    ({"prompts": ["describe"], "task": "categorize"}, "no categorize generations"),
    ({"completion_url_template": "javascript:alert(1)"}, "not an http(s) URL"),
    ({"scale_min": 5, "scale_max": 1}, "must be greater"),
    ({"check_items": "Pick 9|9|9"}, "must lie within the scale"),
    ({"check_items": "no range here"}, "TEXT|MIN|MAX"),
    ({"completion_code": "has spaces!"}, "letters, digits"),
    ({"raters_per_item": 0}, "greater than or equal to 1"),
    ({"name": ""}, "This field is required"),
    ({"statuses": ["error"]}, "no describe generations with status error"),
    ({"statuses": ["nonsense"]}, "Select a valid choice"),
    # Numbers past the 32-bit columns were a DataError (HTTP 500).
    ({"raters_per_item": 2**31}, "raters per item 2147483648 is too large"),
    ({"max_participants": 2**70}, "max participants 1180591620717411303424 is too large"),
    ({"assignment_timeout_minutes": 2**63}, "assignment timeout minutes 9223372036854775808 is too large"),
    ({"scale_min": 2**40, "scale_max": 2**40 + 4}, "scale min 1099511627776 is too large"),
])
def test_it_shows_validation_errors_and_creates_nothing(make_generations, rita, overrides, message) -> None:
    make_generations(2)
    response = rita.post("/studies/new/", form_data(**overrides))
    assert response.status_code == 400
    page = response.content.decode()
    assert "was not created" in page and message in page.replace("&#x27;", "'")
    assert not Study.objects.exists() and not Item.objects.exists()


def test_it_refuses_the_study_form_to_annotators(make_generations, annotator_user) -> None:
    make_generations(2)
    client = Client()
    client.force_login(annotator_user)
    assert client.post("/studies/new/", form_data()).status_code == 403
    assert not Study.objects.exists()


def test_it_edits_a_draft_and_refuses_to_edit_an_open_study(make_generations, rita) -> None:
    make_generations(4)
    rita.post("/studies/new/", form_data())
    study = Study.objects.get()
    page = rita.get(f"/studies/{study.slug}/edit/").content.decode()
    assert "WEB-1" in page and "gold: Gold text|4|5" in page
    response = rita.post(f"/studies/{study.slug}/edit/", form_data(name="Renamed", raters_per_item=3,
                                                                 check_items="", items_per_participant=""))
    assert response.status_code == 302
    study.refresh_from_db()
    assert (study.name, study.raters_per_item, study.items_per_participant) == ("Renamed", 3, None)
    assert not study.items.exclude(kind="normal").exists() and study.items.count() == 4
    bad = rita.post(f"/studies/{study.slug}/edit/", form_data(scale_min=3, scale_max=2))
    assert bad.status_code == 400
    study.refresh_from_db()
    assert study.name == "Renamed"  # a failed edit changed nothing
    rita.post(f"/studies/{study.slug}/manage/status", {"status": "open"})
    response = rita.post(f"/studies/{study.slug}/edit/", form_data(name="Too late"))
    assert response.status_code == 302 and response["Location"] == f"/studies/{study.slug}/manage/"
    study.refresh_from_db()
    assert study.name == "Renamed" and study.status == "open"


def test_it_duplicates_a_study_as_a_new_draft(study, rita, crowd) -> None:
    rate_through(crowd(study, "w"), study)
    response = rita.post("/studies/match/duplicate")
    copy = Study.objects.exclude(pk=study.pk).get()
    assert response["Location"] == f"/studies/{copy.slug}/edit/"
    assert (copy.status, copy.name, copy.raters_per_item) == ("draft", "Copy of Match study", 2)
    assert copy.items.count() == study.items.count() and not Annotator.objects.filter(study=copy).exists()
    assert copy.completion_code != study.completion_code and copy.pseudonym_salt != study.pseudonym_salt


def test_it_gives_a_collaborators_copy_to_them_and_shares_it_with_the_owner(study, researcher) -> None:
    from django.contrib.auth.models import Group, User

    from annotations.models import RESEARCHER_GROUP

    carl = User.objects.create_user("carl", "c@example.org", "password-carl")
    carl.groups.add(Group.objects.get_or_create(name=RESEARCHER_GROUP)[0])
    study.collaborators.add(carl)
    client = Client()
    client.force_login(carl)
    client.post("/studies/match/duplicate")
    copy = Study.objects.exclude(pk=study.pk).get()
    assert copy.owner == carl and list(copy.collaborators.all()) == [researcher]


def test_it_opens_pauses_and_closes_from_the_manage_page(study, rita) -> None:
    for status in ("paused", "open", "closed", "open"):
        rita.post("/studies/match/manage/status", {"status": status})
        study.refresh_from_db()
        assert study.status == status
    response = rita.post("/studies/match/manage/status", {"status": "draft"}, follow=True)
    assert "cannot go back to draft" in response.content.decode()


def test_it_shows_codes_links_progress_times_and_cost_on_the_manage_page(study, rita, crowd) -> None:
    Study.objects.filter(pk=study.pk).update(items_per_participant=3, expected_minutes=10, pay_per_hour="12.00")
    rate_through(crowd(study, "a"), study)
    Annotator.objects.filter(external_id="a").update(excluded=True, exclusion_reason="median 0.1 s, too fast")
    rate_through(crowd(study, "b"), study)
    page = rita.get("/studies/match/manage/").content.decode()
    assert 'id="completion-code">DONE-4242<' in page
    assert "https://app.prolific.com/submissions/complete?cc=DONE-4242" in page
    assert "PROLIFIC_PID={{%PROLIFIC_PID%}}" in page and 'id="mturk-url">http://testserver/s/match/join<' in page
    assert 'id="reward">2.00 GBP' in page
    assert 'id="cost-so-far">4.00 GBP (2 paid)' in page  # a and b finished with the code
    assert "(9 ratings missing, about 3 participants)" in page and 'id="cost-to-finish">6.00 GBP' in page
    assert "median 0.1 s, too fast" in page and 'id="median-participant">' in page
    assert page.count("<tr><td>") >= 6  # one progress row per item
    for link in ("/research/studies/match/exports/ratings.csv", "/research/studies/match/exports/payment.csv",
                 "/research/studies/match/reports/", "/studies/match/preview/"):
        assert f'href="{link}"' in page
    assert 'class="table-scroll"' in page and 'class="topbar"' in page
    Study.objects.filter(pk=study.pk).update(items_per_participant=None)
    rate_through(crowd(study, "c"), study)  # c rates all 6: b's 3 items now have k = 2 usable ratings
    lacking = rita.get("/studies/match/manage/?items=lacking").content.decode()
    rows = lacking.split('id="item-progress"')[1].split("</table>")[0]
    assert rows.count("<tr><td>") == 3 and "1 / 2" in rows and "2 / 2" not in rows
    full = rita.get("/studies/match/manage/").content.decode().split('id="item-progress"')[1]
    assert full.count("2 / 2") == 3


def test_it_filters_generations_by_the_chosen_statuses(make_generations, rita) -> None:
    from inference.models import Generation

    make_generations(2)
    make_generations(1, status=Generation.Status.UNPARSEABLE)
    rita.post("/studies/new/", form_data(name="Only ok"))
    rita.post("/studies/new/", form_data(name="Ok and unparseable", statuses=["ok", "unparseable"]))
    assert Study.objects.get(name="Only ok").items.filter(kind="normal").count() == 2
    both = Study.objects.get(name="Ok and unparseable")
    assert both.items.filter(kind="normal").count() == 3 and both.selection["statuses"] == ["ok", "unparseable"]
