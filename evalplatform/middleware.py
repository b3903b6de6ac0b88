"""Security headers on every response: Content-Security-Policy and Permissions-Policy.

Django's SecurityMiddleware already sends X-Content-Type-Options, Referrer-Policy and
Cross-Origin-Opener-Policy, and XFrameOptionsMiddleware X-Frame-Options. The policy allows scripts,
styles, images and fetches from this site only: no inline scripts, no inline styles, no `eval`, no
plugins, no framing (the templates keep their JavaScript in static files). A view that sets its own
policy keeps it (the stored report pages forbid scripts entirely).
"""
from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, QueryDict
from django.http.multipartparser import MultiPartParserError


def policy_header(directives: dict[str, list[str]]) -> str:
    return "; ".join(" ".join([name, *values]) for name, values in directives.items())


class SecurityHeadersMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.csp = policy_header(settings.CONTENT_SECURITY_POLICY)
        self.permissions = settings.PERMISSIONS_POLICY

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = self.csp
        if self.permissions and "Permissions-Policy" not in response:
            response["Permissions-Policy"] = self.permissions
        return response


class NulByteRefusalMiddleware:
    """400 for a query string or posted form fields (url-encoded or multipart) holding a NUL byte (`%00`):
    never meaningful here; PostgreSQL refuses it in any text comparison, so a view or an admin list filter
    that passed it to a query failed with a DataError (HTTP 500)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if _holds_nul(request.GET) or _holds_nul(_posted(request)):
            return HttpResponseBadRequest("A NUL byte is not allowed in a request.", content_type="text/plain")
        return self.get_response(request)


def _posted(request: HttpRequest) -> QueryDict:
    """The POST's form fields (url-encoded or multipart; CsrfViewMiddleware reads them on every POST anyway),
    empty for other requests and bodies; a malformed multipart body is left to the view, as before."""
    if request.method != "POST":
        return QueryDict()
    try:
        return request.POST
    except MultiPartParserError:
        return QueryDict()


def _holds_nul(query: QueryDict) -> bool:
    return any("\x00" in key or any("\x00" in value for value in values) for key, values in query.lists())


class AdminSelectionMiddleware:
    """400 for an admin bulk action whose selected rows are not ids: Django's admin filtered by them and
    the action raised on the first non-integer (HTTP 500). Every model here has an integer primary key."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith("/admin/"):
            selected = _posted(request).getlist("_selected_action")
            if not all(value.isascii() and value.isdigit() and int(value) < 2**63 for value in selected):
                return HttpResponseBadRequest("Selected rows must be given by their ids.", content_type="text/plain")
        return self.get_response(request)
