"""An annotator in headless Chromium on a phone-sized screen: crowd link, consent, keyboard rating,
completion code; a failed attention check shows the study's configured outcome."""
from __future__ import annotations

import pytest

from annotations.models import Annotator, Item, Rating, Study
from annotations.services.studies import study_create
from tests.annotations.conftest import SECRET_CONFIG, SECRET_MODEL

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ATTENTION = "Attention check: please choose 5 for this one."
SCREENSHOT = "/tmp/affect-eval-rating-phone.png"


def make_study(make_generations, *, action: str) -> Study:
    make_generations(3, texts=["Calm and content.", "Tense <b>and</b> alert.", "Sad, looking down."])
    return study_create(
        name="Phone study", slug=f"phone-{action}", dataset="faces", config_names=[SECRET_CONFIG],
        prompt_names=["describe"], k=2, open_now=True, completion_code="E2E-7731", failed_check_action=action,
        consent_text="Your answers are stored anonymously.", attention_items=[f"{ATTENTION}|5|5"],
    )


def join_and_consent(page, live_server, study: Study, worker: str) -> None:
    page.goto(f"{live_server.url}/s/{study.slug}/join?PROLIFIC_PID={worker}&STUDY_ID=ps&SESSION_ID=sess")
    assert "Your answers are stored anonymously." in page.locator("main").inner_text()
    page.get_by_label("I have read the information above and agree to take part.").check()
    with page.expect_navigation():
        page.get_by_role("button", name="Start").click()


def rate_with_keyboard(page, *, check_value: str, normal_value: str = "4", screenshot: str = "") -> list[str]:
    """Rate until the rating form is gone; returns the warnings shown along the way."""
    warnings = []
    while page.locator("#rating-form").count():
        text = page.locator("#description").inner_text()
        if screenshot and text != ATTENTION:
            page.locator("img.face").evaluate("img => img.complete || new Promise(r => img.onload = r)")
            page.screenshot(path=screenshot, full_page=True)
            screenshot = ""
        page.keyboard.press(check_value if text == ATTENTION else normal_value)
        with page.expect_navigation():
            page.keyboard.press("Enter")
        warnings += page.locator(".messages li.warning").all_inner_texts()
    return warnings


def test_it_takes_a_crowd_worker_from_link_to_completion_code(phone_page, live_server, make_generations) -> None:
    study = make_study(make_generations, action="warn")
    page = phone_page
    join_and_consent(page, live_server, study, "e2e-worker-1")
    page.wait_for_selector("#rating-form")
    body = page.content()
    assert SECRET_CONFIG not in body and SECRET_MODEL not in body
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")  # no sideways scroll
    box = page.locator("label.point").first.bounding_box()
    assert box["height"] >= 48 and box["width"] >= 48  # thumb-sized targets
    warnings = rate_with_keyboard(page, check_value="5", screenshot=SCREENSHOT)
    assert warnings == []
    assert page.locator("#completion-code").inner_text() == "E2E-7731"
    annotator = Annotator.objects.get(external_id="e2e-worker-1")
    assert annotator.completed_at is not None and not annotator.excluded
    assert sorted(Rating.objects.filter(annotator=annotator).values_list("value", flat=True)) == [4, 4, 4, 5]
    assert all(r.seconds_on_item is not None for r in Rating.objects.filter(annotator=annotator))


def test_it_shows_a_warning_after_a_failed_attention_check(phone_page, live_server, make_generations) -> None:
    study = make_study(make_generations, action="warn")
    join_and_consent(phone_page, live_server, study, "e2e-careless")
    warnings = rate_with_keyboard(phone_page, check_value="1")
    assert warnings == ["That answer did not match an attention check. Please read each item carefully."]
    assert phone_page.locator("#completion-code").inner_text() == "E2E-7731"
    annotator = Annotator.objects.get(external_id="e2e-careless")
    assert annotator.failed_checks == 1 and annotator.excluded
    assert Rating.objects.get(annotator=annotator, item__kind=Item.Kind.ATTENTION).passed_check is False


def test_it_ends_the_session_after_a_failed_check_when_configured(phone_page, live_server, make_generations) -> None:
    study = make_study(make_generations, action="end")
    join_and_consent(phone_page, live_server, study, "e2e-ended")
    rate_with_keyboard(phone_page, check_value="2")
    assert phone_page.locator("h1").inner_text() == "Your session has ended"
    assert "E2E-7731" not in phone_page.content()
    annotator = Annotator.objects.get(external_id="e2e-ended")
    assert annotator.excluded and annotator.completed_at is not None
