"""Create a Bearer token for the researcher JSON API."""
from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotations.models import ApiToken


class Command(BaseCommand):
    help = "Create an API token for USER and print its key once (send it as Authorization: Bearer <key>)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("user", help="Username of the researcher the token acts for.")
        parser.add_argument("--name", default="", help="A label to tell tokens apart (e.g. 'notebook').")

    def handle(self, *args: Any, **opts: Any) -> None:
        user = get_user_model().objects.filter(username=opts["user"]).first()
        if user is None:
            raise CommandError(f"no user {opts['user']!r}")
        if not user.is_active:
            raise CommandError(f"user {user.username!r} is inactive")
        token = ApiToken.objects.create(user=user, name=opts["name"][:100])
        self.stdout.write(token.key)
