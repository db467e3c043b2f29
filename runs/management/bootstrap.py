"""First-start setup shared by `serve` and the tests: the demo suite and the admin user."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model

from runs.models import RunConfig, Suite

DEMO_NAME = "demo"
ADMIN_NAME = "admin"


def ensure_demo_suite() -> tuple[Suite, bool]:
    suite, created = Suite.objects.get_or_create(
        name=DEMO_NAME,
        defaults={
            "path": str(settings.PTD_DEMO_SUITE_DIR),
            "description": (
                "A small API suite: each worker starts its own JSON service, tests call it "
                "with requests. Some tests are slow, one class shares a fixture (try "
                "loadscope), and one test is flaky by nature."
            ),
        },
    )
    if not suite.configs.exists():
        RunConfig.objects.create(suite=suite, name="default", is_default=True, workers=4)
    return suite, created


def ensure_admin() -> str | None:
    """Create the `admin` superuser on the very first start; return its password then only.

    The random password is also written, mode 600, to <data dir>/initial_admin_password.
    Later starts neither change the user nor overwrite the file.
    """
    User = get_user_model()
    if (
        User.objects.filter(is_superuser=True).exists()
        or User.objects.filter(username=ADMIN_NAME).exists()
    ):
        return None
    password = secrets.token_urlsafe(18)
    User.objects.create_superuser(ADMIN_NAME, email="", password=password)
    path = Path(settings.DATA_DIR) / "initial_admin_password"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(password + "\n")
    os.chmod(path, 0o600)
    return password
