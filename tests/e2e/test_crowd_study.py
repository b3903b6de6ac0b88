"""The whole crowd-study loop in headless Chromium: a researcher (not a superuser) creates a study on the web
(12 items, k = 2, 5 items per participant), previews it and opens it; three Prolific-link participants rate
5 items each and are redirected to Prolific's completion URL with the code; a fourth finishes early; the
researcher follows per-item progress, closes the study while a fifth participant is mid-item (who still
finishes and gets the code), builds the report and downloads ratings that join back to the samples."""
from __future__ import annotations

import csv
import io
import re

import pytest

from annotations.models import Annotator, Assignment, Rating, Report, Study
from inference.models import LLMConfig, Sample
from tests.annotations.conftest import SECRET_CONFIG

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
PROLIFIC = "https://app.prolific.com/"


def _log_in(page, live_server, username: str, password: str) -> None:
    page.goto(f"{live_server.url}/accounts/login/?next=/studies/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    with page.expect_navigation():
        page.locator("form button[type=submit], form input[type=submit]").first.click()


def _rate(page, n: int, value: str = "4") -> None:
    for _ in range(n):
        page.wait_for_selector("#rating-form")
        page.keyboard.press(value)
        with page.expect_navigation():
            page.keyboard.press("Enter")


def _participant(browser, live_server, study: Study, worker: str):
    """A phone-sized browser that followed the Prolific link and consented; Prolific itself is stubbed."""
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    context.route(f"{PROLIFIC}**", lambda route: route.fulfill(status=200, content_type="text/html",
                                                                 body="<html><body>Prolific stub</body></html>"))
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto(f"{live_server.url}/s/{study.slug}/join?PROLIFIC_PID={worker}&STUDY_ID=prol-study&SESSION_ID=s-{worker}")
    page.get_by_label("I have read the information above and agree to take part.").check()
    with page.expect_navigation():
        page.get_by_role("button", name="Start").click()
    return context, page


def test_a_researcher_runs_a_prolific_study_from_creation_to_report(
    browser, live_server, make_generations, researcher
) -> None:
    make_generations(12)
    assert not researcher.is_superuser
    rita_context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True,
                                       accept_downloads=True)
    rita = rita_context.new_page()
    rita.set_default_timeout(30_000)
    _log_in(rita, live_server, researcher.username, "password-rita")

    # Create on the web.
    rita.goto(f"{live_server.url}/studies/new/")
    rita.fill("#id_name", "Prolific pilot")
    rita.select_option("#id_configs", str(LLMConfig.objects.get(name=SECRET_CONFIG).pk))
    rita.select_option("#id_prompts", "describe")
    rita.fill("#id_raters_per_item", "2")
    rita.fill("#id_items_per_participant", "5")
    rita.fill("#id_expected_minutes", "5")
    rita.fill("#id_pay_per_hour", "12")
    with rita.expect_navigation():
        rita.click("#save")
    study = Study.objects.get(name="Prolific pilot")
    assert (study.owner, study.status, study.items.count(), study.raters_per_item) == (researcher, "draft", 12, 2)
    code = study.completion_code
    assert rita.locator("#completion-code").inner_text() == code
    assert "https://app.prolific.com/submissions/complete?cc=" + code in rita.locator("#completion-url").inner_text()

    # Preview: consent, five items, completion; nothing stored.
    rita.click("#preview-link")
    assert "Preview" in rita.locator("#preview-banner").inner_text()
    rita.get_by_label("I have read the information above and agree to take part.").check()
    with rita.expect_navigation():
        rita.get_by_role("button", name="Start").click()
    _rate(rita, 5)
    assert rita.locator("#completion-code").inner_text() == code
    assert (Annotator.objects.count(), Assignment.objects.count(), Rating.objects.count()) == (0, 0, 0)

    rita.goto(f"{live_server.url}/studies/{study.slug}/manage/")
    with rita.expect_navigation():
        rita.click("#open-study")
    assert rita.locator("#study-status").inner_text() == "Open"

    # Three participants rate their five items and land on Prolific with the code.
    for worker in ("pp-one", "pp-two", "pp-three"):
        context, page = _participant(browser, live_server, study, worker)
        _rate(page, 5)
        assert page.locator("#completion-code").inner_text() == code
        page.wait_for_url(f"{PROLIFIC}submissions/complete?cc={code}", timeout=20_000)
        assert "Prolific stub" in page.content()
        context.close()

    # A fourth finishes early: the partial-completion code.
    context, page = _participant(browser, live_server, study, "pp-early")
    _rate(page, 1)
    with page.expect_navigation():
        page.click("#finish")
    assert page.locator("#completion-code").inner_text() == study.partial_completion_code
    context.close()

    # Per-item progress; on a phone the wide tables scroll inside their box, not the page.
    rita.goto(f"{live_server.url}/studies/{study.slug}/manage/")
    assert rita.locator("#item-progress tbody tr").count() == 12
    complete = int(rita.locator("#items-complete").inner_text().split("/")[0])
    assert complete >= 1  # 16 ratings over 12 items at k = 2
    assert rita.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    rita.click("#filter-lacking")
    rita.wait_for_url(re.compile(r"items=lacking"))
    assert rita.locator("#item-progress tbody tr").count() == 12 - complete

    # A fifth participant is mid-item when the study closes: they still finish it and get the code.
    context, late = _participant(browser, live_server, study, "pp-late")
    late.wait_for_selector("#rating-form")
    rita.goto(f"{live_server.url}/studies/{study.slug}/manage/")
    with rita.expect_navigation():
        rita.click("#close-study")
    assert rita.locator("#study-status").inner_text() == "Closed"
    late.keyboard.press("3")
    with late.expect_navigation():
        late.keyboard.press("Enter")
    assert late.locator("#completion-code").inner_text() == code
    late.wait_for_url(f"{PROLIFIC}submissions/complete?cc={code}", timeout=20_000)
    context.close()
    assert Annotator.objects.get(external_id="pp-late").outcome == Annotator.Outcome.CLOSED
    assert Rating.objects.count() == 3 * 5 + 1 + 1

    # Report and the ratings download.
    with rita.expect_navigation():
        rita.locator("#research-links button").click()
    report = Report.objects.get(study=study)
    assert report.version == 1
    rita.goto(f"{live_server.url}/studies/{study.slug}/manage/")
    with rita.expect_download() as download:
        rita.click(f"a[href='/research/studies/{study.slug}/exports/ratings.csv']")
    rows = list(csv.DictReader(io.StringIO(open(download.value.path(), encoding="utf-8").read())))
    assert len(rows) == 17
    samples = {s.pk: s for s in Sample.objects.all()}
    for row in rows:
        sample = samples[int(row["sample_id"])]
        assert (row["image_sha256"], row["sample_external_id"]) == (sample.image_sha256, sample.external_id)
        assert row["llm_config"] == SECRET_CONFIG and row["annotator"].startswith("p-")
        assert "pp-" not in row["annotator"]
    rita_context.close()
