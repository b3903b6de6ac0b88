"""Annotator pages (join, consent, rate, done) and the researcher's progress page, over HTTP."""
from __future__ import annotations

import re

import pytest
from django.test import Client

from annotations.models import Annotator, Assignment, Item, Rating, Study
from annotations.services.studies import study_check_items_add

from .conftest import SECRET_CONFIG, SECRET_MODEL

pytestmark = pytest.mark.django_db


def current_item_url(client: Client, study: Study) -> str:
    response = client.get(f"/s/{study.slug}/")
    assert response.status_code == 302
    return response["Location"]


def rate_through(client: Client, study: Study, value: int = 3) -> int:
    """Rate every item offered; returns how many were rated."""
    rated = 0
    while True:
        location = current_item_url(client, study)
        if "/a/" not in location:
            return rated
        assert client.get(location).status_code == 200
        assert client.post(location, {"value": value, "comment": ""}).status_code == 302
        rated += 1


def test_it_joins_from_a_prolific_link_and_asks_for_consent_first(study) -> None:
    client = Client()
    response = client.get("/s/match/join", {"PROLIFIC_PID": "5f0c1a", "STUDY_ID": "s1", "SESSION_ID": "x9"})
    assert response.status_code == 302 and response["Location"] == "/s/match/consent"
    annotator = Annotator.objects.get()
    assert (annotator.platform, annotator.external_id, annotator.external_session, annotator.external_study) == (
        "prolific", "5f0c1a", "x9", "s1")
    assert client.get("/s/match/")["Location"] == "/s/match/consent"
    page = client.get("/s/match/consent")
    assert b"You agree to rate descriptions." in page.content and b"Rate how well each text fits." in page.content


def test_it_rejoins_the_same_worker_to_their_own_session(study, crowd) -> None:
    first = crowd(study, "worker-1")
    held = current_item_url(first, study)
    second = crowd(study, "worker-1")  # a new browser, same Prolific id
    assert Annotator.objects.count() == 1
    assert current_item_url(second, study) == held


def test_it_joins_from_an_mturk_link(study) -> None:
    client = Client()
    response = client.get("/s/match/join", {"workerId": "A1B2C3", "assignmentId": "AS1", "hitId": "H1"})
    assert response.status_code == 302
    assert Annotator.objects.get().platform == Annotator.Platform.MTURK


def test_it_shows_an_mturk_preview_without_creating_an_annotator(study) -> None:
    response = Client().get("/s/match/join", {"assignmentId": "ASSIGNMENT_ID_NOT_AVAILABLE", "hitId": "H1"})
    assert response.status_code == 200 and b"preview" in response.content
    assert not Annotator.objects.exists()


@pytest.mark.parametrize("params", [
    {"STUDY_ID": "s1", "SESSION_ID": "x"},  # Prolific link without PROLIFIC_PID
    {"hitId": "H1", "assignmentId": "A1"},  # MTurk link without workerId
    {"PROLIFIC_PID": "<script>alert(1)</script>"},
    {"PROLIFIC_PID": "x" * 300},
])
def test_it_refuses_a_join_link_without_a_valid_worker_id(study, params) -> None:
    response = Client().get("/s/match/join", params)
    assert response.status_code == 400
    assert b"This link cannot start the study" in response.content
    assert b"<script>alert(1)" not in response.content
    assert not Annotator.objects.exists()


def test_it_refuses_new_annotators_in_a_closed_study(study) -> None:
    Study.objects.filter(pk=study.pk).update(status=Study.Status.CLOSED)
    response = Client().get("/s/match/join", {"PROLIFIC_PID": "late"})
    assert response.status_code == 403 and not Annotator.objects.exists()


def test_it_offers_login_to_an_anonymous_visitor_without_a_link(study) -> None:
    response = Client().get("/s/match/join")
    assert response.status_code == 200 and b"/accounts/login/?next=" in response.content


def test_it_joins_a_logged_in_account(study, annotator_user) -> None:
    client = Client()
    client.force_login(annotator_user)
    assert client.get("/s/match/join")["Location"] == "/s/match/consent"
    annotator = Annotator.objects.get()
    assert annotator.user == annotator_user and annotator.platform == Annotator.Platform.ACCOUNT


def test_it_requires_ticking_the_consent_box(study, crowd) -> None:
    client = crowd(study, "w", consent=False)
    response = client.post("/s/match/consent", {})
    assert response.status_code == 400 and b"Please tick the box" in response.content
    assert Annotator.objects.get().consented_at is None


def test_it_rates_every_item_and_shows_the_completion_code(study, crowd) -> None:
    client = crowd(study, "w")
    assert rate_through(client, study, value=4) == 6
    done = client.get("/s/match/done")
    assert done.status_code == 200 and b"DONE-4242" in done.content
    annotator = Annotator.objects.get()
    assert annotator.completed_at is not None
    assert list(Rating.objects.values_list("value", flat=True)) == [4] * 6


def test_it_renders_the_rating_page_with_scale_progress_and_accessible_labels(study, crowd) -> None:
    client = crowd(study, "w")
    page = client.get(current_item_url(client, study)).content.decode()
    assert page.count('type="radio" name="value"') == 5
    assert "Not at all" in page and "Very well" in page
    assert "<legend id=\"question\">How well does this description match" in page
    assert re.search(r'<progress id="progress" max="6" value="0"', page)
    assert '<label for="progress"' in page and 'for="value-3"' in page
    assert 'name="viewport"' in page and "annotations/rate.js" in page


def test_it_never_shows_model_identity_or_scores(study, crowd) -> None:
    client = crowd(study, "w")
    page = client.get(current_item_url(client, study)).content.decode()
    for secret in (SECRET_CONFIG, SECRET_MODEL, "cosine", "V=", "similarity", "openai"):
        assert secret not in page


def test_it_shows_the_image_va_and_reference_only_when_configured(study, crowd) -> None:
    Study.objects.filter(pk=study.pk).update(show_image=False, show_va=True, show_reference=True)
    client = crowd(study, "w")
    location = current_item_url(client, study)
    page = client.get(location).content.decode()
    assert "/image" not in page and "valence <strong>0.25</strong>" in page and "reference text" in page
    assert client.get(location + "image").status_code == 404


def test_it_serves_the_image_of_an_own_assignment(study, crowd) -> None:
    client = crowd(study, "w")
    location = current_item_url(client, study)
    assert f'src="{location}image"' in client.get(location).content.decode()
    response = client.get(location + "image")
    assert response.status_code == 200 and b"".join(response.streaming_content).startswith(b"\x89PNG")


def test_it_rerenders_a_rating_outside_the_scale_with_an_error(study, crowd) -> None:
    client = crowd(study, "w")
    location = current_item_url(client, study)
    response = client.post(location, {"value": "9"})
    assert response.status_code == 400 and b"Choose a rating from 1 to 5" in response.content
    assert not Rating.objects.exists()
    assert Assignment.objects.get().status == Assignment.Status.ACTIVE


def test_it_keeps_a_replayed_submit_idempotent(study, crowd) -> None:
    client = crowd(study, "w")
    location = current_item_url(client, study)
    client.post(location, {"value": "2"})
    replay = client.post(location, {"value": "5"}, follow=True)
    assert b"already recorded" in replay.content
    assert list(Rating.objects.values_list("value", flat=True)) == [2]


def test_it_warns_after_a_failed_attention_check(study, crowd) -> None:
    study_check_items_add(study=study, check_items=["Attention: choose 5 here.|5|5"])
    client = crowd(study, "w")
    warned = False
    while "/a/" in (location := current_item_url(client, study)):
        text = client.get(location).content.decode()
        response = client.post(location, {"value": "1"}, follow=True)
        if "Attention: choose 5 here." in text:
            warned = b"did not match an attention check" in response.content
    assert warned
    assert Annotator.objects.get().failed_checks == 1


def test_it_ends_the_session_without_a_code_when_configured(study, crowd) -> None:
    Study.objects.filter(pk=study.pk).update(failed_check_action="end")
    study_check_items_add(study=study, check_items=["Attention: choose 5 here.|5|5"])
    client = crowd(study, "w")
    while "/a/" in (location := current_item_url(client, study)):
        client.post(location, {"value": "1"})
    page = client.get("/s/match/done")
    assert b"Your session has ended" in page.content and b"DONE-4242" not in page.content
    check = Item.objects.get(kind=Item.Kind.ATTENTION)
    assert Rating.objects.get(item=check).passed_check is False


def test_it_shows_a_newcomer_a_full_page_when_every_item_has_k_ratings(study, crowd) -> None:
    for name in ("a", "b"):
        rate_through(crowd(study, name), study)
    response = Client().get("/s/match/join", {"PROLIFIC_PID": "late"})
    assert response.status_code == 403 and b"This study is full" in response.content
    assert not Annotator.objects.filter(external_id="late").exists()


def test_it_lists_only_the_annotators_own_ratings(study, crowd) -> None:
    anna, ben = crowd(study, "anna"), crowd(study, "ben")
    location = current_item_url(anna, study)
    anna.post(location, {"value": "4", "comment": "anna-was-here"})
    assert b"anna-was-here" not in ben.get("/s/match/mine").content
    assert ben.get("/s/match/mine").content.count(b"<tr><td>") == 0
    assert anna.get("/s/match/mine").content.count(b"<tr><td>") == 1


def test_it_shows_researchers_the_study_progress(study, crowd, researcher) -> None:
    rate_through(crowd(study, "a"), study)
    rate_through(crowd(study, "b"), study)
    Annotator.objects.filter(external_id="b").update(excluded=True, exclusion_reason="too fast")
    client = Client()
    client.force_login(researcher)
    page = client.get("/studies/match/manage/").content.decode()
    assert 'id="items-complete">0 / 6<' in page  # b's ratings no longer count towards k = 2
    assert 'id="annotators">2 (2 finished)' in page and 'id="annotators-excluded">1<' in page
    assert 'action="/research/studies/match/reports/build"' in page and 'href="/research/studies/match/reports/"' in page
    assert "PROLIFIC_PID={{%PROLIFIC_PID%}}" in page and "too fast" in page
    assert b"Match study" in client.get("/studies/").content


def test_it_counts_complete_items_from_non_excluded_raters(study, crowd, researcher) -> None:
    rate_through(crowd(study, "a"), study)
    rate_through(crowd(study, "b"), study)
    client = Client()
    client.force_login(researcher)
    assert 'id="items-complete">6 / 6<' in client.get("/studies/match/manage/").content.decode()


def test_it_hides_the_progress_page_from_annotators_and_sends_anonymous_to_login(
    study, annotator_user, outsider
) -> None:
    for user in (annotator_user, outsider):
        client = Client()
        client.force_login(user)
        assert client.get("/studies/match/manage/").status_code == 404
        assert client.get("/studies/").status_code == 403
    response = Client().get("/studies/match/manage/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/?next=")


def test_it_lets_a_researcher_close_and_reopen_a_study(study, researcher, annotator_user) -> None:
    client = Client()
    client.force_login(researcher)
    client.post("/studies/match/manage/status", {"status": "closed"})
    study.refresh_from_db()
    assert study.status == Study.Status.CLOSED
    client.post("/studies/match/manage/status", {"status": "open"})
    study.refresh_from_db()
    assert study.status == Study.Status.OPEN
    other = Client()
    other.force_login(annotator_user)
    assert other.post("/studies/match/manage/status", {"status": "closed"}).status_code == 404
    study.refresh_from_db()
    assert study.status == Study.Status.OPEN
