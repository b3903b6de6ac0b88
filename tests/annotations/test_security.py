"""Access between annotators, anonymous visitors, CSRF on every POST, escaping of LLM text."""
from __future__ import annotations

import uuid

import pytest
from django.test import Client

from annotations.models import Annotator, Assignment, Rating, Study
from annotations.services.studies import study_create

from .conftest import SECRET_CONFIG, crowd_client

pytestmark = pytest.mark.django_db


def held_url(client: Client, study: Study) -> str:
    location = client.get(f"/s/{study.slug}/")["Location"]
    assert "/a/" in location
    return location


def test_it_hides_another_annotators_assignment(study, crowd) -> None:
    anna, ben = crowd(study, "anna"), crowd(study, "ben")
    bens = held_url(ben, study)
    assert anna.get(bens).status_code == 404
    assert anna.get(bens + "image").status_code == 404
    assert anna.post(bens, {"value": "5"}).status_code == 404
    assignment = Assignment.objects.get(annotator__external_id="ben")
    assert assignment.status == Assignment.Status.ACTIVE and not Rating.objects.exists()


def test_it_returns_404_for_a_forged_assignment_id(study, crowd) -> None:
    client = crowd(study, "anna")
    held_url(client, study)
    assert client.post(f"/s/match/a/{uuid.uuid4()}/", {"value": "3"}).status_code == 404
    assert client.post("/s/match/a/not-a-uuid/", {"value": "3"}).status_code == 404
    assert not Rating.objects.exists()


def test_it_keeps_one_studys_annotator_out_of_another_study(study, crowd, make_generations) -> None:
    make_generations(2, dataset_name="other")
    other = study_create(name="Other", slug="other", dataset="other", config_names=[], prompt_names=[],
                         k=2, open_now=True)
    anna = crowd(study, "anna")
    location = held_url(anna, study)
    assert anna.get(location.replace("/s/match/", "/s/other/"))["Location"] == "/s/other/join"
    assert not Annotator.objects.filter(study=other).exists()


@pytest.mark.parametrize("path", ["/s/match/", "/s/match/consent", "/s/match/done", "/s/match/mine"])
def test_it_sends_anonymous_visitors_to_join(study, path) -> None:
    response = Client().get(path)
    assert response.status_code == 302 and response["Location"] == "/s/match/join"


def test_it_sends_anonymous_visitors_of_an_item_to_join(study, crowd) -> None:
    location = held_url(crowd(study, "anna"), study)
    response = Client().get(location)
    assert response.status_code == 302 and response["Location"] == "/s/match/join"
    assert Client().post(location, {"value": "3"})["Location"] == "/s/match/join"
    assert not Rating.objects.exists()


def test_it_enforces_csrf_on_every_post(study, researcher) -> None:
    client = crowd_client(study, "csrf-worker", consent=False, enforce_csrf_checks=True)
    assert client.post("/s/match/consent", {"agree": "on"}).status_code == 403
    assert Annotator.objects.get().consented_at is None
    Annotator.objects.update(consented_at="2026-01-01T00:00:00Z")
    location = held_url(client, study)
    assert client.post(location, {"value": "3"}).status_code == 403
    assert not Rating.objects.exists()
    staff = Client(enforce_csrf_checks=True)
    staff.force_login(researcher)
    assert staff.post("/studies/match/manage/status", {"status": "closed"}).status_code == 403
    assert Study.objects.get().status == Study.Status.OPEN
    # With the token from the page, the same POST goes through: the 403s above were CSRF.
    page = client.get(location)
    token = page.context["csrf_token"]
    assert client.post(location, {"value": "3", "csrfmiddlewaretoken": str(token)}).status_code == 302
    assert Rating.objects.count() == 1


def test_it_renders_a_script_in_a_description_as_text(make_generations, crowd) -> None:
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)> & friends'
    make_generations(1, texts=[evil])
    study = study_create(name="XSS", slug="xss", dataset="faces", config_names=[SECRET_CONFIG],
                         prompt_names=["describe"], k=1, open_now=True)
    client = crowd(study, "anna")
    location = held_url(client, study)
    page = client.get(location).content.decode()
    assert "<script>alert" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page and "&amp; friends" in page
    client.post(location, {"value": "3"})
    mine = client.get("/s/xss/mine").content.decode()
    assert "<script>alert" not in mine and "&lt;script&gt;" in mine


def test_it_cycles_the_session_key_on_join(study) -> None:
    client = Client()
    client.get("/")
    client.cookies["sessionid"] = "attacker-chosen-session-key"
    client.get("/s/match/join", {"PROLIFIC_PID": "victim"})
    assert client.cookies["sessionid"].value != "attacker-chosen-session-key"
