"""Playwright driving Debian's chromium (never a downloaded browser)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def require_chromium() -> None:
    if CHROMIUM.exists():
        return
    message = f"{CHROMIUM} is absent (apt-get install chromium)"
    if os.environ.get("PTD_REQUIRE_BROWSER") == "1":
        pytest.fail(f"PTD_REQUIRE_BROWSER=1 but {message}")
    pytest.skip(message)


def launch(playwright):
    return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)


def login_admin(page, server) -> None:
    """Log `page` in as the admin that `serve` created on first start (a ServeProcess)."""
    password = (server.data_dir / "initial_admin_password").read_text().strip()
    page.goto(f"{server.url}/login/")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server.url}/")
