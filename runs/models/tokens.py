"""Who may call the API: bearer tokens (only a hash is stored) and the helpers that scrub them."""

from __future__ import annotations

import hashlib
import re
import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone

from runs.models.suites import iso


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


# What ApiToken.create_for makes: "ptd_" and 43 URL-safe characters (shorter ones too, to
# be safe). Used to scrub tokens out of text that is stored and shown (a run's arguments).
TOKEN_RE = re.compile(r"ptd_[A-Za-z0-9_-]{16,}")
REDACTED = "ptd_[redacted]"


def redact_tokens(value):
    """`value` (text, or lists and dicts of it, as in a JSON field) with tokens redacted."""
    if isinstance(value, str):
        return TOKEN_RE.sub(REDACTED, value)
    if isinstance(value, list):
        return [redact_tokens(v) for v in value]
    if isinstance(value, dict):
        return {k: redact_tokens(v) for k, v in value.items()}
    return value


class ApiTokenQuerySet(models.QuerySet):
    def authenticate(self, raw: str):
        """The token's row for a raw token, or None. Look-up by a hash of the whole token."""
        if not raw or not raw.startswith(ApiToken.PREFIX):
            return None
        digest = hash_token(raw)
        token = self.select_related("user").filter(hashed=digest).first()
        if token is None or not secrets.compare_digest(token.hashed, digest):
            return None
        if not token.user.is_active:
            return None
        return token


class ApiToken(models.Model):
    """A bearer token for the API. Only a SHA-256 of it is stored; it is shown once."""

    PREFIX = "ptd_"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=12, help_text="First characters, to recognise it.")
    hashed = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name or 'unnamed'}) of {self.user}"

    @classmethod
    def create_for(cls, user, name: str = "") -> tuple[ApiToken, str]:
        raw = cls.PREFIX + secrets.token_urlsafe(32)
        token = cls.objects.create(user=user, name=name, prefix=raw[:12], hashed=hash_token(raw))
        return token, raw

    def touch(self) -> None:
        now = timezone.now()
        # At most one write a minute per token: the API stays read-mostly.
        if self.last_used_at is None or (now - self.last_used_at).total_seconds() > 60:
            ApiToken.objects.filter(pk=self.pk).update(last_used_at=now)
            self.last_used_at = now

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "name": self.name,
            "prefix": self.prefix,
            "created_at": iso(self.created_at),
            "last_used_at": iso(self.last_used_at),
        }
