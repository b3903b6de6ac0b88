"""Create a Bearer token for the researcher JSON API."""
from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotations.services.tokens import MAX_DAYS, ApiTokenInvalid, api_token_create


class Command(BaseCommand):
    help = ("Create an API token for USER and print its key once on stdout (send it as Authorization: Bearer "
            "<key>); only a hash is stored, so it cannot be shown again. Revoke tokens in the admin or on "
            "/research/tokens/.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("user", help="Username of the researcher the token acts for.")
        parser.add_argument("--name", default="", help="A label to tell tokens apart (e.g. 'notebook').")
        parser.add_argument("--days", type=int, default=None,
                            help=f"Days until the token expires, 1-{MAX_DAYS} (default: API_TOKEN_DAYS, 90).")

    def handle(self, *args: Any, **opts: Any) -> None:
        user = get_user_model().objects.filter(username=opts["user"]).first()
        if user is None:
            raise CommandError(f"no user {opts['user']!r}")
        try:
            token, key = api_token_create(user=user, name=opts["name"], days=opts["days"])
        except ApiTokenInvalid as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(key)
        self.stderr.write(f"token {token.prefix}… for {user.get_username()} expires {token.expires_at:%Y-%m-%d %H:%M} UTC; "
                          "the key above is not stored and will not be shown again")
