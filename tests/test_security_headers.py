"""The security headers reach every response (HTML, JSON, 404), and a view's own policy is kept."""
from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/", "/accounts/login/", "/admin/login/", "/no-such-page/", "/pipeline/healthz",
                                  "/research/api/studies/x/ratings"])
def test_it_sends_the_policy_and_headers_on_every_response(client: Client, path: str) -> None:
    response = client.get(path)
    csp = response["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert response["Permissions-Policy"].startswith("camera=()")
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"


@pytest.mark.parametrize("query", ["status__exact=%00", "q=a%00b", "a%00=1"])
def test_it_answers_a_nul_byte_in_the_query_string_with_400(admin_client: Client, query: str) -> None:
    # An admin list filter passed it to PostgreSQL, which refused it: a DataError, HTTP 500.
    response = admin_client.get(f"/admin/inference/batch/?{query}")
    assert response.status_code == 400 and b"NUL byte" in response.content
    assert "default-src 'self'" in response["Content-Security-Policy"]
    assert Client().get("/?next=%00").status_code == 400
    assert admin_client.get("/admin/inference/batch/?status__exact=queued").status_code == 200


def test_it_keeps_a_policy_that_a_view_set_itself() -> None:
    from django.http import HttpResponse
    from django.test import RequestFactory

    from evalplatform.middleware import SecurityHeadersMiddleware

    def view(request):
        response = HttpResponse("report")
        response["Content-Security-Policy"] = "default-src 'none'"
        return response

    response = SecurityHeadersMiddleware(view)(RequestFactory().get("/"))
    assert response["Content-Security-Policy"] == "default-src 'none'"
