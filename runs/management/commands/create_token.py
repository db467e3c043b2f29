"""`python manage.py create_token USERNAME [--name LABEL]`: print a new API token once."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from runs.models import ApiToken


class Command(BaseCommand):
    help = "Create an API token for a user and print it (alone on the last line); shown once."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="a label to recognise the token by")

    def handle(self, *args, username, name, **options):
        if len(name) > 100:
            raise CommandError("--name must be at most 100 characters", returncode=2)
        try:
            user = get_user_model().objects.filter(username=username).first()
        except DatabaseError as exc:
            raise CommandError(
                f"the database is not ready ({exc}): run `manage.py migrate` "
                "or start `manage.py serve` once",
                returncode=2,
            ) from None
        if user is None:
            raise CommandError(f"no user named {username!r}", returncode=2)
        if not user.is_active:
            raise CommandError(f"the user {username!r} is inactive", returncode=2)
        token, raw = ApiToken.create_for(user, name)
        self.stderr.write(
            f"Created token {token.prefix}… for {username}"
            + (f" ({name})" if name else "")
            + ". It is shown once; keep it secret."
        )
        self.stdout.write(raw)
