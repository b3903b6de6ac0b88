"""Every page carries a Content-Security-Policy (no inline scripts or styles) and the usual security
headers, and Chromium reports no CSP violation on the main pages: anonymous, crowd participant,
researcher and admin."""
from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from annotations.models import Study
from annotations.reports import study_report_build
from annotations.services.studies import study_create
from inference.models import Batch, Dataset
from tests.annotations.conftest import SECRET_CONFIG

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# Chromium fires `securitypolicyviolation` for every blocked script, style, image or fetch (and logs it
# to the console); the init script records both before any page script runs.
RECORD_VIOLATIONS = """
window.__csp = [];
document.addEventListener("securitypolicyviolation",
  e => window.__csp.push(`${e.violatedDirective} blocked ${e.blockedURI || "inline"} (${e.sourceFile}:${e.lineNumber})`));
"""


@pytest.fixture
def site(make_generations, admin_user: User) -> dict[str, object]:
    make_generations(3, texts=["Calm and content.", "Tense and alert.", "Sad, looking down."])
    study = study_create(name="Header study", slug="headers", dataset="faces", config_names=[SECRET_CONFIG],
                         prompt_names=["describe"], k=2, open_now=True, owner=admin_user,
                         consent_text="Your answers are stored anonymously.")
    batch = Batch.objects.create(dataset=Dataset.objects.get(name="faces"), stages=["va"], va_source="dataset",
                                 created_by=admin_user)
    return {"study": study, "batch": batch}


class Browser:
    """A page that records CSP violations and console errors across navigations."""

    def __init__(self, browser, live_server) -> None:
        self.context = browser.new_context()
        self.context.add_init_script(RECORD_VIOLATIONS)
        self.page = self.context.new_page()
        self.page.set_default_timeout(15_000)
        self.base = live_server.url
        self.console: list[str] = []
        self.page.on("console", lambda m: self.console.append(m.text) if m.type == "error" else None)

    def visit(self, path: str) -> dict[str, str]:
        response = self.page.goto(self.base + path)
        assert response is not None and response.status < 400, (path, response and response.status)
        self.page.wait_for_load_state("load")
        violations = self.page.evaluate("window.__csp")
        assert violations == [], (path, violations)
        return response.all_headers()

    def login_as(self, user: User) -> None:
        client = Client()
        client.force_login(user)
        self.context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value,
                                   "url": self.base}])


def _assert_headers(headers: dict[str, str], path: str) -> None:
    csp = headers.get("content-security-policy", "")
    assert "default-src 'self'" in csp or "default-src 'none'" in csp, path
    assert "'unsafe-inline'" not in csp.split("style-src")[0], path  # scripts never inline
    assert headers.get("x-content-type-options") == "nosniff", path
    assert headers.get("x-frame-options") == "DENY", path
    assert headers.get("referrer-policy") == "same-origin", path


def test_the_anonymous_and_participant_pages_run_under_the_policy(browser, live_server, site) -> None:
    study: Study = site["study"]  # type: ignore[assignment]
    visitor = Browser(browser, live_server)
    try:
        for path in ["/", "/accounts/login/", "/admin/login/", f"/s/{study.slug}/join"]:
            _assert_headers(visitor.visit(path), path)
        headers = visitor.visit(f"/s/{study.slug}/join?PROLIFIC_PID=csp-1&STUDY_ID=s&SESSION_ID=x")
        _assert_headers(headers, "consent")
        visitor.page.get_by_label("I have read the information above and agree to take part.").check()
        with visitor.page.expect_navigation():
            visitor.page.get_by_role("button", name="Start").click()
        visitor.page.wait_for_selector("#rating-form")
        visitor.page.locator("img.face").evaluate("img => img.complete || new Promise(r => img.onload = r)")
        # rate.js runs (it is the keyboard handler): a key press selects a rating.
        visitor.page.keyboard.press("4")
        assert visitor.page.locator("input[name=value]:checked").get_attribute("value") == "4"
        assert visitor.page.evaluate("window.__csp") == []
        assert not [m for m in visitor.console if "Content Security Policy" in m]
    finally:
        visitor.context.close()


def test_the_researcher_and_admin_pages_run_under_the_policy(browser, live_server, site, admin_user) -> None:
    study: Study = site["study"]  # type: ignore[assignment]
    batch: Batch = site["batch"]  # type: ignore[assignment]
    study_report_build(study=study, resamples=20)
    researcher = Browser(browser, live_server)
    researcher.login_as(admin_user)
    try:
        for path in [
            "/", "/studies/", f"/studies/{study.slug}/manage/", f"/research/studies/{study.slug}/reports/",
            f"/research/studies/{study.slug}/reports/1/", "/research/tokens/", f"/pipeline/batches/{batch.pk}/",
            "/admin/", "/admin/annotations/study/", f"/admin/annotations/study/{study.pk}/change/",
            "/studies/new/", f"/studies/{study.slug}/preview/", f"/studies/{study.slug}/preview/item/1/",
            "/admin/inference/batch/", "/admin/auth/user/add/", "/admin/audit/auditevent/",
            "/admin/annotations/apitoken/",
        ]:
            _assert_headers(researcher.visit(path), path)
        assert not [m for m in researcher.console if "Content Security Policy" in m], researcher.console
    finally:
        researcher.context.close()
