"""Participant sessions: a budget of items, 'finish now', the completion page (code, Prolific redirect,
MTurk external submit), closing/pausing/filling while participants are in, the participant cap, drafts."""
from __future__ import annotations

import re

import pytest
from django.test import Client

from annotations.models import Annotator, Assignment, Item, Rating, Study
from annotations.services.studies import study_check_items_add, study_status_set

from .test_views import current_item_url, rate_through

pytestmark = pytest.mark.django_db
PROLIFIC_DONE = "https://app.prolific.com/submissions/complete?cc=DONE-4242"


def _budget(study: Study, n: int, **fields: object) -> None:
    Study.objects.filter(pk=study.pk).update(items_per_participant=n, **fields)
    study.refresh_from_db()


def test_it_stops_at_the_budget_and_sends_prolific_participants_back_with_the_code(study, crowd) -> None:
    _budget(study, 2)
    client = crowd(study, "w1")
    assert rate_through(client, study) == 2
    done = client.get("/s/match/done").content.decode()
    assert 'id="completion-code">DONE-4242<' in done
    assert f'content="5;url={PROLIFIC_DONE}"' in done and f'href="{PROLIFIC_DONE}"' in done
    annotator = Annotator.objects.get(external_id="w1")
    assert annotator.outcome == Annotator.Outcome.COMPLETE and annotator.ratings.count() == 2


def test_it_shows_the_session_length_as_the_budget(study, crowd) -> None:
    _budget(study, 3)
    client = crowd(study, "w1")
    page = client.get(current_item_url(client, study)).content.decode()
    assert re.search(r'<progress id="progress" max="3" value="0"', page)


def test_it_gives_every_check_on_top_of_the_budget(study, crowd) -> None:
    _budget(study, 2)
    study_check_items_add(study=study, check_items=["Choose 1 here.|1|1"])
    client = crowd(study, "w1")
    assert rate_through(client, study, value=1) == 3
    kinds = sorted(Rating.objects.values_list("item__kind", flat=True))
    assert kinds == ["attention", "normal", "normal"]


@pytest.mark.parametrize(("early_finish", "code"), [("partial", "PART-77"), ("code", "DONE-4242"), ("none", None)])
def test_it_finishes_early_with_the_configured_outcome(study, crowd, early_finish, code) -> None:
    _budget(study, 4, early_finish=early_finish, partial_completion_code="PART-77")
    client = crowd(study, "w1")
    first = current_item_url(client, study)
    client.post(first, {"value": "3"})
    held = current_item_url(client, study)
    assert "/a/" in held
    page = client.get(held).content.decode()
    assert 'id="finish"' in page
    response = client.post("/s/match/finish")
    assert response["Location"] == "/s/match/done"
    annotator = Annotator.objects.get(external_id="w1")
    assert annotator.outcome == Annotator.Outcome.PARTIAL and annotator.completed_at is not None
    # The item in hand went back to the pool at once.
    assert not Assignment.objects.filter(annotator=annotator, status=Assignment.Status.ACTIVE).exists()
    done = client.get("/s/match/done").content.decode()
    if code:
        assert f'id="completion-code">{code}<' in done and f"cc={code}" in done
    else:
        assert "completion-code" not in done and "gives no completion code" in done
    assert client.get("/s/match/")["Location"] == "/s/match/done"  # no more items after finishing


def test_it_states_the_early_finish_outcome_and_the_reward_on_the_consent_page(study, crowd) -> None:
    _budget(study, 20, early_finish="none", expected_minutes=10, pay_per_hour="9.00")
    client = crowd(study, "w1", consent=False)
    page = client.get("/s/match/consent").content.decode()
    assert "up to 20 descriptions, about 10 minutes" in page
    assert "Reward: 1.50 GBP" in page
    assert "finishing early gives no completion code" in page


def test_it_lets_a_participant_finish_the_item_in_hand_after_the_study_closes(study, crowd) -> None:
    _budget(study, 4)
    client = crowd(study, "mid")
    client.post(current_item_url(client, study), {"value": "4"})
    held = current_item_url(client, study)
    study_status_set(study=study, status=Study.Status.CLOSED)
    assert client.get(held).status_code == 200
    assert client.post(held, {"value": "2"}).status_code == 302
    assert client.get("/s/match/")["Location"] == "/s/match/done"
    done = client.get("/s/match/done").content.decode()
    assert "DONE-4242" in done and "The study closed while you were taking part" in done
    annotator = Annotator.objects.get(external_id="mid")
    assert annotator.outcome == Annotator.Outcome.CLOSED and annotator.ratings.count() == 2
    newcomer = Client().get("/s/match/join", {"PROLIFIC_PID": "new"})
    assert newcomer.status_code == 403 and "This study is closed" in newcomer.content.decode()
    assert not Annotator.objects.filter(external_id="new").exists()


def test_it_keeps_participants_going_but_turns_newcomers_away_while_paused(study, crowd) -> None:
    client = crowd(study, "in")
    client.post(current_item_url(client, study), {"value": "4"})
    study_status_set(study=study, status=Study.Status.PAUSED)
    assert "/a/" in current_item_url(client, study)  # a new item is still given to someone already in
    response = Client().get("/s/match/join", {"PROLIFIC_PID": "new"})
    assert response.status_code == 403 and b"This study is paused" in response.content


def test_it_caps_participants_and_resumes_the_same_worker(study, crowd) -> None:
    Study.objects.filter(pk=study.pk).update(max_participants=1)
    first = crowd(study, "one")
    held = current_item_url(first, study)
    response = Client().get("/s/match/join", {"PROLIFIC_PID": "two"})
    assert response.status_code == 403 and b"This study is full" in response.content
    again = Client()
    assert again.get("/s/match/join", {"PROLIFIC_PID": "one"}).status_code == 302  # same id: same session
    assert current_item_url(again, study) == held
    assert Annotator.objects.count() == 1


def test_it_hides_draft_studies_from_the_join_pages(study, crowd) -> None:
    Study.objects.filter(pk=study.pk).update(status=Study.Status.DRAFT)
    for path in ("/s/match/join", "/s/match/join?PROLIFIC_PID=x", "/s/match/consent", "/s/match/", "/s/match/done"):
        response = Client().get(path)
        assert response.status_code == 404, path
        assert b"Match study" not in response.content
    assert not Annotator.objects.exists()


def test_it_refuses_a_repeated_rating_field(study, crowd) -> None:
    client = crowd(study, "w1")
    location = current_item_url(client, study)
    response = client.post(location, "value=3&value=5", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400 and b"sent more than once" in response.content
    assert not Rating.objects.exists()
    assert Assignment.objects.get().status == Assignment.Status.ACTIVE


def test_it_sends_mturk_workers_to_the_external_submit_form(study) -> None:
    client = Client()
    client.get("/s/match/join", {"workerId": "AW1", "assignmentId": "ASG9", "hitId": "H1",
                                 "turkSubmitTo": "https://workersandbox.mturk.com"})
    client.post("/s/match/consent", {"agree": "on"})
    Study.objects.filter(pk=study.pk).update(items_per_participant=1)
    rate_through(client, study)
    done = client.get("/s/match/done").content.decode()
    assert 'action="https://workersandbox.mturk.com/mturk/externalSubmit"' in done
    assert 'name="assignmentId" value="ASG9"' in done and "DONE-4242" in done


def test_it_never_posts_an_mturk_submit_to_a_host_from_the_link(study) -> None:
    client = Client()
    client.get("/s/match/join", {"workerId": "AW2", "assignmentId": "ASG1", "turkSubmitTo": "https://evil.example"})
    assert Annotator.objects.get().submit_to == "https://www.mturk.com"


def test_it_ends_without_a_code_for_a_failed_check_under_the_end_rule(study, crowd) -> None:
    _budget(study, 6, failed_check_action="end")
    study_check_items_add(study=study, check_items=["Choose 5 here.|5|5"])
    client = crowd(study, "careless")
    rate_through(client, study, value=1)
    done = client.get("/s/match/done").content.decode()
    assert "Your session has ended" in done and "DONE-4242" not in done and "prolific.com" not in done
    assert Annotator.objects.get().outcome == Annotator.Outcome.ENDED


def test_it_previews_a_study_without_enrolling_holding_or_storing(study, researcher) -> None:
    Study.objects.filter(pk=study.pk).update(items_per_participant=2)
    study_check_items_add(study=study, check_items=["Choose 1 here.|1|1"])
    client = Client()
    client.force_login(researcher)
    assert client.get("/s/match/join")["Location"] == "/studies/match/preview/"  # a researcher is never enrolled
    consent = client.get("/studies/match/preview/").content.decode()
    assert 'id="preview-banner"' in consent and "You agree to rate descriptions." in consent
    assert client.post("/studies/match/preview/", {"agree": "on"})["Location"] == "/studies/match/preview/item/1/"
    for number in (1, 2, 3):
        page = client.get(f"/studies/match/preview/item/{number}/").content.decode()
        assert 'id="preview-banner"' in page and f'max="3" value="{number - 1}"' in page
        bad = client.post(f"/studies/match/preview/item/{number}/", {"value": "9"})
        assert bad.status_code == 400
        response = client.post(f"/studies/match/preview/item/{number}/", {"value": "3"})
    assert response["Location"] == "/studies/match/preview/done"
    done = client.get(response["Location"]).content.decode()
    assert "DONE-4242" in done and 'id="preview-banner"' in done and "http-equiv" not in done
    assert client.get("/studies/match/preview/item/4/").status_code == 404
    assert (Annotator.objects.count(), Assignment.objects.count(), Rating.objects.count()) == (0, 0, 0)


def test_it_offers_researchers_previews_not_join_links_on_the_home_page(study, researcher, annotator_user) -> None:
    client = Client()
    client.force_login(researcher)
    page = client.get("/").content.decode()
    assert 'href="/studies/match/preview/"' in page and 'href="/s/match/join"' not in page
    client.force_login(annotator_user)
    assert 'href="/s/match/join"' in client.get("/").content.decode()
    assert not Annotator.objects.exists()


def test_it_counts_check_items_outside_the_budget(study, join_annotator) -> None:
    from annotations.assignment import assignment_next
    from annotations.services.ratings import rating_submit

    _budget(study, 1)
    study_check_items_add(study=study, check_items=["Choose 2 here.|2|2"])
    annotator = join_annotator(study, "svc")
    seen = []
    while (assignment := assignment_next(annotator=annotator)) is not None:
        seen.append(assignment.item.kind)
        rating_submit(annotator=annotator, assignment_token=assignment.token, value=2)
    assert sorted(seen) == [Item.Kind.ATTENTION, Item.Kind.NORMAL]


@pytest.mark.parametrize(("form_class", "body", "field"), [
    ("RatingForm", "value=3&value=5", "value"),
    ("ChoiceForm", "best=1&best=2&worst=3", "best"),
    ("ConsentForm", "agree=on&agree=on", "agree"),
    ("StudyStatusForm", "status=open&status=closed", "status"),
])
def test_it_refuses_a_field_sent_twice_on_every_participant_and_status_form(study, form_class, body, field) -> None:
    from django.http import QueryDict

    from annotations import forms

    cls = getattr(forms, form_class)
    form = cls(QueryDict(body), study=study) if form_class in ("RatingForm", "ChoiceForm") else cls(QueryDict(body))
    assert not form.is_valid()
    assert "This field was sent more than once." in form.errors[field]


def test_it_lets_mturk_frame_the_hit_and_opens_the_task_in_its_own_tab(study) -> None:
    params = {"workerId": "AW7", "assignmentId": "ASG7", "hitId": "H7",
              "turkSubmitTo": "https://workersandbox.mturk.com"}
    framed = Client().get("/s/match/join", params, HTTP_SEC_FETCH_DEST="iframe")
    assert framed.status_code == 200 and 'id="open-in-tab"' in framed.content.decode()
    assert 'target="_blank"' in framed.content.decode() and "workerId=AW7" in framed.content.decode()
    assert "frame-ancestors 'self' https://www.mturk.com https://workersandbox.mturk.com" in framed[
        "Content-Security-Policy"]
    assert "X-Frame-Options" not in framed
    assert not Annotator.objects.exists()  # nothing happens inside the frame
    preview = Client().get("/s/match/join", {"assignmentId": "ASSIGNMENT_ID_NOT_AVAILABLE", "hitId": "H7"})
    assert "https://www.mturk.com" in preview["Content-Security-Policy"] and "X-Frame-Options" not in preview
    assert 'id="preview-banner"' not in preview.content.decode()  # not the researcher's preview
    # Every other page still refuses to be framed.
    prolific = Client().get("/s/match/join", {"PROLIFIC_PID": "p"})
    assert "frame-ancestors 'none'" in prolific["Content-Security-Policy"] and prolific["X-Frame-Options"] == "DENY"


def test_it_allows_the_mturk_external_submit_in_the_done_pages_policy(study) -> None:
    client = Client()
    client.get("/s/match/join", {"workerId": "AW8", "assignmentId": "ASG8", "hitId": "H8",
                                 "turkSubmitTo": "https://workersandbox.mturk.com"})
    client.post("/s/match/consent", {"agree": "on"})
    client.post("/s/match/finish")
    done = client.get("/s/match/done")
    assert "form-action 'self' https://workersandbox.mturk.com" in done["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in done["Content-Security-Policy"]
