"""The engine tests that matter, run in suite interpreters of each supported set of versions.

``test_compat_<set>.py`` imports the tests (so they run again there, under that module's
``suite_python`` fixture) and sets ``suite_python = interpreter("<set>")``. One module per
set, so ``--dist loadfile`` spreads the sets over workers. The venvs are built on first use
(tests/compat_venvs.py); a machine that cannot build them (no PyPI) skips these tests, unless
``PTD_COMPAT_REQUIRED`` is set (CI), where that is a failure.
"""

from __future__ import annotations

import os

import pytest

from tests.compat_venvs import BuildError, venv_python


def interpreter(name: str):
    @pytest.fixture
    def suite_python() -> str:
        try:
            return venv_python(name)
        except BuildError as exc:
            if os.environ.get("PTD_COMPAT_REQUIRED"):
                pytest.fail(f"cannot build the {name!r} suite venv: {exc}")
            pytest.skip(f"cannot build the {name!r} suite venv (PyPI unreachable?): {exc}")

    return suite_python
