"""The HTML report in headless Chromium: the SVG plots render and the page logs no console error."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.test import Client

from annotations.models import Report
from annotations.reports import study_report_build
from tests.annotations.test_reports import EMBEDDERS, study_make

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))  # scripts/setup.sh --test sets it
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM} (scripts/setup.sh --test installs one)"),
]


@pytest.fixture
def browser_session(live_server, researcher: User, monkeypatch):
    """A Chromium page logged in as the researcher (session cookie from Django's test client)."""
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the live server's ORM calls happen in
    # its own thread, and the test's own ORM calls are made before or after the browser work.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    client = Client()
    client.force_login(researcher)
    cookie = client.cookies["sessionid"].value
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context()
        context.add_cookies([{"name": "sessionid", "value": cookie, "url": live_server.url}])
        page = context.new_page()
        errors: list[str] = []
        # The site has no favicon (base.html is not this test's subject); every other error counts.
        page.on("console", lambda msg: errors.append(f"{msg.text} {msg.location.get('url', '')}")
                if msg.type == "error" and not msg.location.get("url", "").endswith("/favicon.ico") else None)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        yield page, errors
        # Known: pytest may still warn at the very end that one idle live-server connection held the
        # test database while it was dropped; the tests' results do not depend on it.
        context.close()
        browser.close()


def test_it_renders_the_report_plots_in_chromium(browser_session, live_server, researcher: User) -> None:
    study = study_make(owner=researcher, items=16)
    study_report_build(study=study, resamples=100)
    page, errors = browser_session
    response = page.goto(f"{live_server.url}/research/studies/{study.slug}/reports/1/")
    assert response is not None and response.status == 200
    assert page.locator("h1").inner_text().startswith(f"{study.name} — report v1")
    svgs = page.locator("figure svg")
    assert svgs.count() == 1 + len(EMBEDDERS) + 1
    for i in range(svgs.count()):
        box = svgs.nth(i).bounding_box()
        assert box is not None and box["width"] > 100 and box["height"] > 50
    # matplotlib draws the scatter points as <use> of a marker path; the points must be in the DOM.
    assert page.locator("figure.scatter svg use").count() >= 16
    assert page.locator("table.alpha").first.inner_text().count("ordinal") == 1
    assert errors == []


def test_it_builds_a_new_version_from_the_list_page(browser_session, live_server, researcher: User) -> None:
    study = study_make(owner=researcher, items=8)
    page, errors = browser_session
    page.goto(f"{live_server.url}/research/studies/{study.slug}/reports/")
    assert "No report yet" in page.content()
    # No transaction is open around a live-server request, so the task (eager in tests) runs at once.
    page.get_by_role("button", name="Build report").click()
    page.wait_for_url(f"{live_server.url}/research/studies/{study.slug}/reports/")
    assert page.locator("#reports a", has_text="v1").count() == 1
    page.locator("#reports a", has_text="v1").click()
    # Wait for the report page itself: on a loaded machine the click returns before it has loaded.
    page.wait_for_url(f"{live_server.url}/research/studies/{study.slug}/reports/1/")
    page.locator("figure svg").first.wait_for()
    assert page.locator("figure svg").count() >= 3
    assert errors == []
    assert os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE") == "true"
    assert Report.objects.filter(study=study, version=1, created_by=researcher).exists()


@pytest.mark.parametrize(("width", "height"), [(1280, 900), (390, 844)])
def test_it_fits_the_report_to_a_desktop_and_a_phone_scrolling_wide_tables_in_their_box(
    browser_session, live_server, researcher: User, width: int, height: int,
) -> None:
    study = study_make(owner=researcher, items=16)
    report = study_report_build(study=study, resamples=100)
    page, errors = browser_session
    page.set_viewport_size({"width": width, "height": height})
    page.goto(f"{live_server.url}/research/studies/{study.slug}/reports/1/")
    assert page.locator("#headline-text").inner_text() == report.results["headline"]
    # The page itself never scrolls sideways; a table wider than the screen scrolls inside its box.
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    for box in page.locator("div.scroll").all():
        assert box.evaluate("el => getComputedStyle(el).overflowX") == "auto"
        assert box.evaluate("el => el.getBoundingClientRect().right") <= width + 0.5
    if width < 500:
        wide = page.locator("table.correlations").first.evaluate("el => el.scrollWidth")
        assert wide > page.locator("table.correlations").first.evaluate("el => el.parentElement.clientWidth")
    assert errors == []
