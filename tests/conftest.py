"""Shared fixtures: a per-session data dir, and owner / member / outsider users."""

import os
import tempfile

# Settings read the environment at import: give the test session its own data dir.
os.environ.setdefault("PTD_DATA_DIR", tempfile.mkdtemp(prefix="ptd-test-"))
