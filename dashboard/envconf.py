"""Small helpers that read settings from the environment and reject bad values clearly.

Every helper raises ImproperlyConfigured naming the variable and what it expected, so a typo
in a deployment fails at start-up with one readable line instead of misbehaving later.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

TRUE = {"1", "true", "yes", "on"}
FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false, yes/no), got {raw!r}")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {value}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_url(name: str, schemes: tuple[str, ...]) -> str:
    """A URL whose scheme is one of `schemes`, or "" when unset."""
    raw = os.environ.get(name, "").strip()
    if raw and raw.split("://", 1)[0] not in schemes:
        allowed = ", ".join(f"{s}://" for s in schemes)
        raise ImproperlyConfigured(f"{name} must start with one of {allowed}, got {raw!r}")
    return raw


def data_dir(name: str = "PTD_DATA_DIR", default: str = "var") -> Path:
    """The data directory, private to its owner: it holds the database (sessions included),
    the secret key and run logs. One made earlier with wider modes is narrowed to 0700."""
    path = Path(os.environ.get(name) or default).resolve()
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = path.stat()
        if info.st_uid == os.getuid() and info.st_mode & 0o077:
            path.chmod(0o700)
    except OSError as exc:
        raise ImproperlyConfigured(f"{name}={str(path)!r} cannot be created: {exc}") from None
    return path


def secret_key(directory: Path, name: str = "SECRET_KEY") -> str:
    """The SECRET_KEY from the environment, else one generated once and kept in `directory`."""
    value = os.environ.get(name, "").strip()
    if value:
        if len(value) < 32:
            raise ImproperlyConfigured(f"{name} must be at least 32 characters long")
        return value
    path = directory / "secret_key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    key = secrets.token_urlsafe(50)
    # O_EXCL: two processes starting at once agree on the first key written.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    return key


def env_origins(name: str) -> list[str]:
    """Comma-separated origins, each ``scheme://host[:port]`` (what CSRF_TRUSTED_ORIGINS takes)."""
    origins = env_list(name, [])
    for origin in origins:
        scheme, sep, host = origin.partition("://")
        if not sep or scheme not in ("http", "https") or not host or "/" in host:
            raise ImproperlyConfigured(
                f"{name} must list origins such as https://ptd.example.com, got {origin!r}"
            )
    return origins


def env_proxy_ssl_header(name: str = "SECURE_PROXY_SSL_HEADER") -> tuple[str, str] | None:
    """``Header-Name,value`` (e.g. ``X-Forwarded-Proto,https``): the header a TLS proxy sets on
    the requests it received over HTTPS, as Django's setting wants it; None when unset."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    header, sep, value = (part.strip() for part in raw.partition(","))
    if not sep or not header or not value or "," in value:
        raise ImproperlyConfigured(
            f"{name} must be 'Header-Name,value' such as X-Forwarded-Proto,https, got {raw!r}"
        )
    meta = header.upper().replace("-", "_")
    return (meta if meta.startswith("HTTP_") else f"HTTP_{meta}"), value
