"""Settings for PTD's own tests: the real settings, with a data dir and connection policy of
their own, fixed before dashboard.settings reads the environment."""

import os
import tempfile

from tests.paths import PYCACHE_DIR

os.environ.setdefault("PTD_DATA_DIR", tempfile.mkdtemp(prefix="ptd-test-"))
# Worker threads (the sink, database_sync_to_async) must not keep PostgreSQL connections open
# past their work, or the test database cannot be dropped at the end.
os.environ.setdefault("PTD_DB_CONN_MAX_AGE", "0")
os.environ.setdefault("PTD_PYCACHE_DIR", PYCACHE_DIR)
# Test processes run side by side (pytest -n): with Redis, each keeps to channels of its own.
os.environ.setdefault("PTD_CHANNEL_PREFIX", f"ptd-test-{os.getpid()}")
# Test cases run inside a transaction that another thread's connection cannot see.
os.environ.setdefault("PTD_BACKGROUND_HISTORY", "0")

from dashboard.settings import *  # noqa: E402, F403

if DATABASES["default"]["ENGINE"].endswith("sqlite3"):  # noqa: F405
    # A file, not shared-cache memory: threads (the pool's sink, the dispatcher) then wait on
    # locks with the busy timeout instead of failing with "database table is locked".
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test.sqlite3")}  # noqa: F405

# Users are created by the hundred in tests: the production hasher (PBKDF2, ~1M iterations)
# made each class's setup take over a second. Login and token checks work the same.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Every Django test client builds its own middleware, and WhiteNoise's scans every static file
# through the finders at construction (~80 ms here, ~0.1 s of each client-driven test: 40 s of
# the URL walk alone). In tests it looks files up when asked instead, as in development.
# (Servers started by the tests run with dashboard.settings, as users' do.)
WHITENOISE_AUTOREFRESH = True
