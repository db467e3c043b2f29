"""xdist's user-facing fixtures, for fork-engine runs where pytest-xdist is not installed.

Same behaviour as xdist's own: they read ``config.workerinput``, which fork workers have.
Registered as a plugin only when xdist is absent (its fixtures would clash otherwise).
"""

from __future__ import annotations

import uuid

import pytest


@pytest.fixture(scope="session")
def worker_id(request: pytest.FixtureRequest) -> str:
    """The id of the current worker ('gw0', 'gw1', ...) or 'master' outside workers."""
    workerinput = getattr(request.config, "workerinput", None)
    return workerinput["workerid"] if workerinput else "master"


@pytest.fixture(scope="session")
def testrun_uid(request: pytest.FixtureRequest) -> str:
    """The id shared by every worker of this run."""
    workerinput = getattr(request.config, "workerinput", None)
    return workerinput["testrunuid"] if workerinput else uuid.uuid4().hex


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "xdist_group: tests of one group run on the same worker (--ptd-dist loadgroup)"
    )
