"""An MTurk worker in headless Chromium: the HIT preview enrols nobody; the accepted HIT's link joins, the
worker consents and rates by keyboard, and the completion page's external-submit form really posts the
assignment id and the code to MTurk (stubbed), which the page's Content-Security-Policy must allow."""
from __future__ import annotations

from urllib.parse import parse_qs

import pytest

from annotations.models import Annotator, Rating, Study
from annotations.services.studies import study_create
from tests.annotations.conftest import SECRET_CONFIG

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
SANDBOX = "https://workersandbox.mturk.com"


def test_an_mturk_worker_previews_joins_rates_and_submits_the_hit(browser, live_server, make_generations,
                                                                   researcher) -> None:
    make_generations(4)
    study = study_create(name="MTurk pilot", dataset="faces", config_names=[SECRET_CONFIG], prompt_names=["describe"],
                         k=1, open_now=True, owner=researcher, items_per_participant=2)
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    posted: list[dict[str, list[str]]] = []

    def mturk(route) -> None:  # MTurk's external-submit endpoint, stubbed: record what the form sent
        posted.append(parse_qs(route.request.post_data or ""))
        route.fulfill(status=200, content_type="text/html", body="<html><body>MTurk stub: HIT submitted</body></html>")

    context.route(f"{SANDBOX}/**", mturk)
    violations: list[str] = []
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.on("console", lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None)

    # The HIT preview (assignment not yet accepted): a description, nothing enrolled.
    page.goto(f"{live_server.url}/s/{study.slug}/join?assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE&hitId=H1")
    assert "MTurk" in page.content()
    assert not Annotator.objects.exists()

    # The accepted HIT: join, consent, rate two items with the keyboard.
    page.goto(f"{live_server.url}/s/{study.slug}/join?workerId=AWORKER1&assignmentId=ASG-77&hitId=H1"
              f"&turkSubmitTo={SANDBOX}")
    page.get_by_label("I have read the information above and agree to take part.").check()
    with page.expect_navigation():
        page.get_by_role("button", name="Start").click()
    for _ in range(2):
        page.wait_for_selector("#rating-form")
        page.keyboard.press("4")
        with page.expect_navigation():
            page.keyboard.press("Enter")
    assert page.locator("#completion-code").inner_text() == study.completion_code
    with page.expect_navigation():
        page.locator("#mturk-submit button").click()
    assert "HIT submitted" in page.content()
    assert posted == [{"assignmentId": ["ASG-77"], "completion_code": [study.completion_code]}]
    assert violations == []
    annotator = Annotator.objects.get()
    assert annotator.submit_to == SANDBOX and Rating.objects.filter(annotator=annotator).count() == 2
    assert Study.objects.get(pk=study.pk).status == Study.Status.OPEN
    context.close()
