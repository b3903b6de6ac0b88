"""Login throttling (django-axes): the account login and the admin login lock after AXES_FAILURE_LIMIT
wrong passwords for a username from one address, so the right password is refused too."""
from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

pytestmark = pytest.mark.django_db


def _attempt(client: Client, url: str, username: str, password: str, ip: str = "203.0.113.7"):
    return client.post(url, {"username": username, "password": password}, REMOTE_ADDR=ip)


@pytest.mark.parametrize("url", ["/accounts/login/", "/admin/login/"])
def test_it_locks_a_login_after_repeated_wrong_passwords(client: Client, admin_user: User, url: str,
                                                         settings) -> None:
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        response = _attempt(client, url, "alice-admin", "wrong-guess")
        assert response.status_code == 200  # the form again, with its error
    assert _attempt(client, url, "alice-admin", "wrong-guess").status_code == 429  # the limit-th failure locks
    response = _attempt(client, url, "alice-admin", "password-alice")
    assert response.status_code == 429
    assert b"Too many failed log-in attempts" in response.content
    assert "_auth_user_id" not in client.session
    # Another address is not locked out by someone else's guessing.
    other = Client()
    assert _attempt(other, url, "alice-admin", "password-alice", ip="198.51.100.2").status_code == 302
    assert other.session["_auth_user_id"] == str(admin_user.pk)


def test_it_forgets_failures_after_a_successful_login(client: Client, admin_user: User, settings) -> None:
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        _attempt(client, "/accounts/login/", "alice-admin", "wrong-guess")
    assert _attempt(client, "/accounts/login/", "alice-admin", "password-alice").status_code == 302
    client.logout()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        _attempt(client, "/accounts/login/", "alice-admin", "wrong-guess")
    assert _attempt(client, "/accounts/login/", "alice-admin", "password-alice").status_code == 302


@pytest.mark.parametrize("url", ["/accounts/login/", "/admin/login/"])
def test_it_counts_an_overlong_username_instead_of_failing(client: Client, url: str, settings) -> None:
    # Axes' username column holds 255 characters; a longer name was a DataError (HTTP 500) on every try.
    from axes.models import AccessAttempt

    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _attempt(client, url, "x" * 100_000, "guess").status_code == 200
    assert _attempt(client, url, "x" * 100_000, "guess").status_code == 429
    assert AccessAttempt.objects.get().username == "x" * 255


def test_the_test_client_login_still_works(client: Client, admin_user: User) -> None:
    """In-process logins (no request, nothing to throttle) pass through the throttle backend."""
    assert client.login(username="alice-admin", password="password-alice")
    assert client.get("/admin/").status_code == 200
