"""Best–worst and pairwise studies end to end in headless Chromium: the researcher creates and opens the study
on the web, participants judge by keyboard on a desktop and on a 390×844 phone, the researcher builds the
report with scores, CIs and metric agreement."""
from __future__ import annotations

import re

import pytest
from django.test import Client

from annotations.models import Rating, Study
from tests.annotations.comparative_data import (
    SECRET_MODEL,
    SYSTEM_PREFIX,
    make_systems_on_faces,
    similarities_add,
)
from tests.e2e.test_annotator_flow import join_and_consent

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
DESKTOP = {"width": 1280, "height": 800}
SYSTEM_RE = re.compile(r"system (\d)")


@pytest.fixture
def pages(browser):
    """A desktop page and a phone page (390×844, touch), each its own participant."""
    desktop = browser.new_context(viewport=DESKTOP)
    phone = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True,
                                has_touch=True)
    out = []
    for context in (desktop, phone):
        page = context.new_page()
        page.set_default_timeout(15_000)
        errors: list[str] = []
        page.on("pageerror", lambda exc, errors=errors: errors.append(str(exc)))
        out.append((page, errors))
    yield out
    desktop.close()
    phone.close()


def _data(systems: int) -> None:
    generations = make_systems_on_faces(samples=2, systems=systems)
    similarities_add(generations, noise={"sentence": 0.02, "word": 1.5})


@pytest.fixture
def researcher_page(browser, live_server, researcher):
    """The researcher's own browser (desktop), logged in."""
    client = Client()
    client.force_login(researcher)
    context = browser.new_context(viewport=DESKTOP)
    context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}])
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield page
    context.close()


def create_on_the_web(page, live_server, *, name: str, kind: str, ties: bool = False) -> Study:
    """Fill the study form (instrument, k = 2, consent), save the draft, open it from the manage page."""
    page.goto(f"{live_server.url}/studies/new/")
    page.fill("#id_name", name)
    page.select_option("#id_kind", kind)
    if ties:
        page.check("#id_allow_ties")
    page.fill("#id_raters_per_item", "2")
    page.fill("#id_consent_text", "Your answers are stored anonymously.")
    with page.expect_navigation():
        page.click("#save")
    study = Study.objects.get(name=name)
    assert (study.kind, study.allow_ties, study.status) == (kind, ties, "draft")
    with page.expect_navigation():
        page.click("#open-study")
    assert page.locator("#study-status").inner_text() == "Open"
    study.refresh_from_db()
    return study


def _quality(text: str) -> int:
    return int(SYSTEM_RE.search(text).group(1))


def judge_bws_by_keyboard(page) -> int:
    """Press the number of the best description, then of the worst, then Enter, until no unit is left."""
    judged = 0
    while page.locator("#unit-form").count():
        texts = page.locator(".option .description").all_inner_texts()
        assert len(texts) == 4
        ranked = sorted(range(4), key=lambda i: _quality(texts[i]))
        page.keyboard.press(str(ranked[-1] + 1))
        page.keyboard.press(str(ranked[0] + 1))
        assert page.locator('input[name="best"]:checked').count() == 1
        assert page.locator('input[name="worst"]:checked').count() == 1
        with page.expect_navigation():
            page.keyboard.press("Enter")
        judged += 1
    return judged


def judge_pairs_by_keyboard(page, *, ties: int = 0) -> int:
    """← or → for the better description (↓ for the first `ties` pairs), then Enter."""
    judged = 0
    while page.locator("#unit-form").count():
        left, right = page.locator(".pair-option .description").all_inner_texts()
        key = "ArrowDown" if judged < ties else ("ArrowLeft" if _quality(left) > _quality(right) else "ArrowRight")
        page.keyboard.press(key)
        with page.expect_navigation():
            page.keyboard.press("Enter")
        judged += 1
    return judged


def _report(page, live_server, study: Study) -> str:
    page.goto(f"{live_server.url}/research/studies/{study.slug}/reports/")
    # The build runs inside this request in tests (eager task): 1000 resamples take a while on a busy machine.
    page.get_by_role("button", name="Build report").click(timeout=180_000)
    page.wait_for_url(f"{live_server.url}/research/studies/{study.slug}/reports/", timeout=180_000)
    page.locator("#reports a", has_text="v1").click()
    return page.locator("body").inner_text()


def test_it_runs_a_bws_study_by_keyboard_on_desktop_and_phone(pages, researcher_page, live_server) -> None:
    _data(systems=5)
    study = create_on_the_web(researcher_page, live_server, name="BWS e2e", kind="bws")
    units = study.items.count()
    (desktop, desktop_errors), (phone, phone_errors) = pages
    for page, worker in ((desktop, "desk-1"), (phone, "phone-1")):
        join_and_consent(page, live_server, study, worker)
        page.wait_for_selector("#unit-form")
        html = page.content()
        assert SYSTEM_PREFIX not in html and SECRET_MODEL not in html
    # Phone: no sideways scroll, and every best/worst button is a thumb-sized target.
    assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    for box in (phone.locator(".pick").nth(i).bounding_box() for i in range(8)):
        assert box["height"] >= 44 and box["width"] >= 44
    assert judge_bws_by_keyboard(desktop) == units
    assert judge_bws_by_keyboard(phone) == units
    assert desktop_errors == [] and phone_errors == []
    ratings = list(Rating.objects.filter(item__study=study).select_related("best__generation__config",
                                                                            "worst__generation__config"))
    assert len(ratings) == 2 * units
    assert all(r.best.generation.config.name > r.worst.generation.config.name for r in ratings)
    text = _report(researcher_page, live_server, study)
    assert "Human scores (best–worst scaling)" in text and "Split-half reliability (K&M" in text
    assert "Metric agreement with the raw choices" in text and "Per system (LLM config × prompt)" in text
    row = researcher_page.locator("#analysis-included table.choice-agreement tr", has_text="sentence").inner_text()
    assert re.search(r"\[\d\.\d{3}, \d\.\d{3}\]", row)  # agreement with a CI
    assert researcher_page.locator("#analysis-included table.systems tr").count() == 1 + 5


def test_it_runs_a_pairwise_study_with_ties_by_keyboard(pages, researcher_page, live_server) -> None:
    _data(systems=3)
    study = create_on_the_web(researcher_page, live_server, name="Pairwise e2e", kind="pairwise", ties=True)
    units = study.items.count()
    (desktop, desktop_errors), (phone, phone_errors) = pages
    for page, worker in ((desktop, "desk-2"), (phone, "phone-2")):
        join_and_consent(page, live_server, study, worker)
        page.wait_for_selector("#unit-form")
    box = phone.locator(".pair-option").first.bounding_box()
    assert box["width"] >= 300 and box["height"] >= 48  # stacked full-width on a phone
    assert judge_pairs_by_keyboard(desktop, ties=1) == units
    assert judge_pairs_by_keyboard(phone) == units
    assert desktop_errors == [] and phone_errors == []
    ties = Rating.objects.filter(item__study=study, best__isnull=True)
    assert ties.count() == 1
    text = _report(researcher_page, live_server, study)
    assert "Human scores (pairwise)" in text and "Bradley–Terry" in text
    assert "Metric agreement with the raw choices" in text
