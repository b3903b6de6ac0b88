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


@pytest.mark.parametrize("encoding", ["multipart", "urlencoded"])
def test_it_answers_a_nul_byte_in_a_form_body_with_400(admin_client: Client, encoding: str) -> None:
    from urllib.parse import urlencode

    fields = {"q": "a\x00b"}
    response = (admin_client.post("/admin/inference/batch/", fields) if encoding == "multipart" else
                admin_client.post("/admin/inference/batch/", urlencode(fields),
                                  content_type="application/x-www-form-urlencoded"))
    assert response.status_code == 400 and b"NUL byte" in response.content
    # A JSON body has no form fields: the view gets it whole.
    assert admin_client.post("/admin/inference/batch/", data=b"{}", content_type="application/json").status_code != 400


def test_it_leaves_a_malformed_multipart_body_to_the_view(admin_client: Client) -> None:
    response = admin_client.post("/admin/inference/batch/", data=b"--x\r\nbroken",
                                 content_type="multipart/form-data; boundary=")
    assert response.status_code in (200, 400)


@pytest.mark.parametrize("selected", ["abc", "1.5", "-1", str(2**70), "\u0661"])
def test_it_answers_an_admin_bulk_action_on_rows_that_are_not_ids_with_400(admin_client: Client, selected: str) -> None:
    # Django's admin filtered by them and the action raised on the first non-integer: HTTP 500.
    response = admin_client.post("/admin/inference/batch/", {"action": "delete_selected", "_selected_action": selected})
    assert response.status_code == 400 and b"by their ids" in response.content


def test_it_lets_an_admin_bulk_action_on_ids_through(admin_client: Client) -> None:
    response = admin_client.post("/admin/inference/batch/", {"action": "delete_selected", "_selected_action": "12345"})
    assert response.status_code in (200, 302)


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
