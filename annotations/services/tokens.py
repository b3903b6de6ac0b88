"""API tokens: create (the key is returned once), authenticate a Bearer key, revoke.

Only `sha256(key)` is stored. A fast hash is enough here, unlike for passwords: the key is 256 random
bits (`secrets.token_urlsafe(32)`), so there is nothing to guess from a leaked hash, and an exact-match
index on the hash finds the token in one lookup.
"""
from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from annotations.models import ApiToken

KEY_PREFIX = "ae_"  # recognisable in logs and by secret scanners
MAX_DAYS = 366


class ApiTokenInvalid(ValueError):
    pass


def api_token_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def api_token_create(*, user: AbstractBaseUser, name: str = "", days: int | None = None) -> tuple[ApiToken, str]:
    """A new token for `user` valid for `days` (default API_TOKEN_DAYS) and its key, which is not stored:
    the caller shows it once."""
    days = settings.API_TOKEN_DAYS if days is None else days
    if not 1 <= days <= MAX_DAYS:
        raise ApiTokenInvalid(f"a token lives 1 to {MAX_DAYS} days, not {days}")
    if not user.is_active:
        raise ApiTokenInvalid(f"user {user.get_username()!r} is inactive")
    if len(name) > 100:
        raise ApiTokenInvalid("the name is at most 100 characters")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(user=user, name=name, key_hash=api_token_hash(key), prefix=key[:8],
                                    expires_at=timezone.now() + timedelta(days=days))
    return token, key


def api_token_authenticate(*, key: str) -> ApiToken | None:
    """The live token with this key (not expired, not revoked, user active), its use recorded; else None."""
    now = timezone.now()
    token = (ApiToken.objects.select_related("user")
             .filter(key_hash=api_token_hash(key.strip()), revoked_at__isnull=True, expires_at__gt=now).first())
    if token is None or not token.user.is_active:
        return None
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token


def api_token_revoke(*, token: ApiToken) -> bool:
    """Revoke now; False when it already was (a second click changes nothing)."""
    changed = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    token.refresh_from_db(fields=["revoked_at"])
    return changed == 1
