"""Login throttling (django-axes) for the account login and the admin login.

Both log in through `django.contrib.auth.authenticate(request, ...)`, so one backend guards both:
after AXES_FAILURE_LIMIT failed passwords for a username from one client address, that pair is locked
for AXES_COOLOFF_MINUTES and even the right password is refused (HTTP 429).
"""
from __future__ import annotations

from typing import Any

from axes.backends import AxesStandaloneBackend
from django.http import HttpRequest


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
