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
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest


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
    """400 for a query string holding a NUL byte (`%00`): it is never meaningful here, and PostgreSQL
    refuses it in any text comparison, so a view or an admin list filter that passed it to a query failed
    with a DataError (HTTP 500). Form fields already refuse it (Django's CharField)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if any("\x00" in key or any("\x00" in value for value in values) for key, values in request.GET.lists()):
            return HttpResponseBadRequest("A NUL byte is not allowed in a request.", content_type="text/plain")
        return self.get_response(request)
