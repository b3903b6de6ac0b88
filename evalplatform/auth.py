"""Login throttling (django-axes) for the account login and the admin login.

Both log in through `django.contrib.auth.authenticate(request, ...)`, so one backend guards both:
after AXES_FAILURE_LIMIT failed passwords for a username from one client address, that pair is locked
for AXES_COOLOFF_MINUTES and even the right password is refused (HTTP 429).
"""
from __future__ import annotations

from typing import Any

from axes.backends import AxesStandaloneBackend
from django.http import HttpRequest

# What axes' AccessAttempt/AccessFailureLog username column holds. Django's login form does not cap the
# username's length before authenticating, so a longer one reached the insert and failed it (HTTP 500).
AXES_USERNAME_MAX = 255


def axes_username(request: HttpRequest, credentials: dict[str, Any] | None = None) -> str | None:
    """The username a login attempt is counted under (AXES_USERNAME_CALLABLE): as typed, cut to fit."""
    username = credentials.get("username") if credentials else request.POST.get("username")
    return username[:AXES_USERNAME_MAX] if isinstance(username, str) else username


class LoginThrottleBackend(AxesStandaloneBackend):
    """Axes' backend, except that an `authenticate()` without a request passes through untouched.

    Axes refuses such calls, but no login over HTTP makes them: Django's login form and the admin
    always pass the request. Only in-process callers do (the test client's `login()`, a shell), and
    there is no client to throttle there; refusing them would make `Client.login` unusable."""

    def authenticate(self, request: HttpRequest | None, username: str | None = None,
                     password: str | None = None, **kwargs: Any) -> None:
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)
