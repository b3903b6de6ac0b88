"""API tokens: only a hash is stored, the key is shown once, tokens expire and their owner revokes them."""
from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.utils import timezone

from annotations.models import RESEARCHER_GROUP, ApiToken, Study
from annotations.services.tokens import ApiTokenInvalid, api_token_create
from tests.annotations.test_reports import study_make

pytestmark = pytest.mark.django_db


@pytest.fixture
def study(researcher: User) -> Study:
    return study_make(owner=researcher, items=3, raters=2, excluded_raters=0)


@pytest.fixture
def other_researcher(db) -> User:
    user = User.objects.create_user("rob-researcher", "rob@example.org", "password-rob")
    user.groups.add(Group.objects.get_or_create(name=RESEARCHER_GROUP)[0])
    return user


def _ratings(client: Client, study: Study, key: str) -> int:
    return client.get(f"/research/api/studies/{study.slug}/ratings", HTTP_AUTHORIZATION=f"Bearer {key}").status_code


def test_it_stores_only_a_hash_of_the_key(researcher: User) -> None:
    token, key = api_token_create(user=researcher, name="notebook")
    token.refresh_from_db()
    stored = " ".join(str(getattr(token, f.attname)) for f in ApiToken._meta.concrete_fields)
    assert key not in stored
    assert token.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert key.startswith(token.prefix) and len(token.prefix) == 8
    assert timedelta(days=89) < token.expires_at - timezone.now() <= timedelta(days=90)


def test_it_refuses_an_expired_token(client: Client, study: Study, researcher: User) -> None:
    token, key = api_token_create(user=researcher, days=1)
    assert _ratings(client, study, key) == 200
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = client.get(f"/research/api/studies/{study.slug}/ratings", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert response.status_code == 401 and "expired" in response.json()["error"]


def test_it_refuses_lifetimes_outside_one_day_to_a_year(researcher: User) -> None:
    for days in (0, -3, 367):
        with pytest.raises(ApiTokenInvalid, match="1 to 366 days"):
            api_token_create(user=researcher, days=days)
    assert not ApiToken.objects.exists()


def test_the_owner_creates_a_token_on_the_page_and_sees_the_key_once(client: Client, study: Study,
                                                                      researcher: User) -> None:
    client.force_login(researcher)
    response = client.post("/research/tokens/", {"name": "notebook", "days": "30"})
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    key = response.context["new_key"]
    assert key.encode() in response.content
    token = ApiToken.objects.get(user=researcher)
    assert token.name == "notebook" and timedelta(days=29) < token.expires_at - timezone.now() <= timedelta(days=30)
    assert _ratings(Client(), study, key) == 200
    listing = client.get("/research/tokens/")
    assert key.encode() not in listing.content and token.prefix.encode() in listing.content


def test_the_page_refuses_a_bad_lifetime_and_creates_nothing(client: Client, researcher: User) -> None:
    client.force_login(researcher)
    response = client.post("/research/tokens/", {"name": "x", "days": "5000"})
    assert response.status_code == 400 and response.context["new_key"] is None
    assert not ApiToken.objects.exists()


def test_the_owner_revokes_a_token(client: Client, study: Study, researcher: User) -> None:
    token, key = api_token_create(user=researcher)
    client.force_login(researcher)
    response = client.post(f"/research/tokens/{token.pk}/revoke", follow=True)
    assert b"revoked" in response.content
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert _ratings(Client(), study, key) == 401


def test_nobody_else_revokes_or_sees_a_token(client: Client, researcher: User, other_researcher: User,
                                             annotator_user: User) -> None:
    token, _ = api_token_create(user=researcher)
    client.force_login(other_researcher)
    assert client.post(f"/research/tokens/{token.pk}/revoke").status_code == 404
    assert token.prefix.encode() not in client.get("/research/tokens/").content
    client.force_login(annotator_user)
    assert client.get("/research/tokens/").status_code == 403
    token.refresh_from_db()
    assert token.revoked_at is None


def test_the_admin_lists_and_revokes_tokens_without_showing_keys(client: Client, admin_user: User,
                                                                  researcher: User) -> None:
    token, key = api_token_create(user=researcher, name="notebook")
    client.force_login(admin_user)
    listing = client.get("/admin/annotations/apitoken/")
    assert token.prefix.encode() in listing.content and key.encode() not in listing.content
    assert client.get("/admin/annotations/apitoken/add/").status_code == 403
    client.post("/admin/annotations/apitoken/", {"action": "revoke", "_selected_action": [token.pk]})
    token.refresh_from_db()
    assert token.revoked_at is not None


def test_the_command_prints_the_key_once_with_an_expiry(researcher: User, capsys) -> None:
    call_command("create_api_token", researcher.username, "--days", "7")
    out, err = capsys.readouterr()
    token = ApiToken.objects.get()
    assert out.strip().startswith(token.prefix) and "will not be shown again" in err
    with pytest.raises(CommandError, match="1 to 366 days"):
        call_command("create_api_token", researcher.username, "--days", "0")
