"""Serving behind a TLS proxy: settings from the environment, `check --deploy` clean, a
Content-Security-Policy on every page that the templates can pass (no inline script,
handler or style attribute)."""

from __future__ import annotations

import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from dashboard import envconf
from tests.servers import ROOT, isolated_env

TLS_ENV = {
    "PTD_HTTPS": "1",
    "SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto,https",
    "SECURE_HSTS_SECONDS": "31536000",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "1",
    "SECURE_HSTS_PRELOAD": "1",
    "CSRF_TRUSTED_ORIGINS": "https://ptd.example.com",
    "ALLOWED_HOSTS": "ptd.example.com",
}


def manage(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    full = {**isolated_env(tmp_path), "SECRET_KEY": secrets.token_urlsafe(50), **env}
    full.pop("DEBUG", None)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_with_the_tls_variables_set(tmp_path):
    done = manage(tmp_path, "check", "--deploy", "--fail-level", "WARNING", **TLS_ENV)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues" in done.stdout
    assert "WARNINGS" not in done.stdout + done.stderr


def test_the_tls_variables_reach_the_settings(tmp_path):
    names = (
        "SECURE_PROXY_SSL_HEADER SESSION_COOKIE_SECURE CSRF_COOKIE_SECURE SECURE_SSL_REDIRECT"
        " SECURE_HSTS_SECONDS SECURE_HSTS_INCLUDE_SUBDOMAINS SECURE_HSTS_PRELOAD"
        " CSRF_TRUSTED_ORIGINS"
    )
    code = (
        "import json; from django.conf import settings;"
        f" print(json.dumps([getattr(settings, n) for n in {names.split()!r}]))"
    )
    done = manage(tmp_path, "shell", "-c", code, **TLS_ENV)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == (
        '[["HTTP_X_FORWARDED_PROTO", "https"], true, true, true, 31536000, true, true, '
        '["https://ptd.example.com"]]'
    )
    plain = manage(tmp_path, "shell", "-c", code)  # none set: plain HTTP, nothing forced
    assert plain.stdout.strip().splitlines()[-1] == (
        "[null, false, false, false, 0, false, false, []]"
    )


def test_https_without_the_proxy_header_is_refused_at_start(tmp_path):
    done = manage(tmp_path, "check", PTD_HTTPS="1")
    assert done.returncode != 0
    assert "SECURE_SSL_REDIRECT needs SECURE_PROXY_SSL_HEADER" in done.stderr


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("X-Forwarded-Proto,https", ("HTTP_X_FORWARDED_PROTO", "https")),
        ("HTTP_X_FORWARDED_SSL, on", ("HTTP_X_FORWARDED_SSL", "on")),
    ],
)
def test_proxy_ssl_header_spellings(monkeypatch, raw, expected):
    monkeypatch.setenv("SECURE_PROXY_SSL_HEADER", raw)
    assert envconf.env_proxy_ssl_header() == expected


@pytest.mark.parametrize("raw", ["X-Forwarded-Proto", "X-Forwarded-Proto,", ",https", "a,b,c"])
def test_proxy_ssl_header_nonsense_is_refused(monkeypatch, raw):
    monkeypatch.setenv("SECURE_PROXY_SSL_HEADER", raw)
    with pytest.raises(ImproperlyConfigured, match="SECURE_PROXY_SSL_HEADER must be"):
        envconf.env_proxy_ssl_header()


@pytest.mark.parametrize("raw", ["ptd.example.com", "ftp://x", "https://", "https://a/b"])
def test_csrf_trusted_origins_must_be_origins(monkeypatch, raw):
    monkeypatch.setenv("CSRF_TRUSTED_ORIGINS", raw)
    with pytest.raises(ImproperlyConfigured, match="CSRF_TRUSTED_ORIGINS must list origins"):
        envconf.env_origins("CSRF_TRUSTED_ORIGINS")


@pytest.mark.django_db
def test_every_page_carries_a_strict_content_security_policy(admin_client, settings):
    response = admin_client.get("/")
    assert response.status_code == 200
    policy = dict(
        part.strip().split(" ", 1) for part in response["Content-Security-Policy"].split(";")
    )
    assert policy["script-src"] == "'self'"
    assert policy["style-src"] == f"'self' {settings.EMPTY_STYLE}"  # empty <style>s only
    assert policy["default-src"] == "'self'" and policy["object-src"] == "'none'"
    assert "unsafe" not in response["Content-Security-Policy"]


INLINE = [
    (re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I), "an inline <script>"),
    (re.compile(r"\son[a-z]+\s*=", re.I), "an inline event handler"),
    (re.compile(r"\sstyle\s*=", re.I), "a style attribute"),
    (re.compile(r"<style", re.I), "a <style> element"),
    (re.compile(r"javascript:", re.I), "a javascript: URL"),
]


# Files the server only ever sends as attachments, to be opened from disk where no policy of
# ours applies: a load run's self-contained HTML report must carry its script and style inline.
DOWNLOADS = {"templates/runs/load_report.html"}


def test_no_template_holds_what_the_policy_blocks():
    found = []
    for path in sorted((ROOT / "templates").rglob("*.html")):
        if str(path.relative_to(ROOT)) in DOWNLOADS:
            continue
        text = path.read_text()
        for pattern, what in INLINE:
            for match in pattern.finditer(text):
                line = text.count("\n", 0, match.start()) + 1
                found.append(f"{path.relative_to(ROOT)}:{line}: {what}")
    assert not found, "\n".join(found)
