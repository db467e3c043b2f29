"""The in-run pytest plugin: reports the run as JSON-lines events and provides the scheduler.

Loaded in the run's pytest process with ``-p _ptd_inrun.plugin``. Active only in the
controlling process (xdist workers load it too, and do nothing). Events go to the descriptor
named by ``PTD_EVENTS_FD``; without it nothing is emitted but the scheduler still works.
"""

from __future__ import annotations

import sys
from typing import Any

import pytest

from .events import open_from_env
from .fork import addoption as _add_fork_options
from .fork import configure as configure_fork
from .fork.plugins import settle_status_db, track_status_db
from .groups import DIR_KEY, controller_dir, remove_dir, write_worker_groups
from .load.options import addoption as _add_load_options
from .load.options import configure as configure_load
from .reporter import REPORTER_NAME, Reporter
from .stacks import enable as enable_stack_dumps
from .terminal import silence_terminal

# Plugins whose end-of-session hooks import their library even when no test used it, and the
# library: hypothesis's terminal summary imports hypothesis (~0.9 s of CPU) to look for files
# it may have written. If the library is not imported by the end of the session, no test in this
# process used it and, in a controller (fork or xdist), no collected test was decorated with it:
# the hooks have nothing to report.
IDLE_UNLESS_IMPORTED = {"hypothesispytest": "hypothesis"}


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Unregister the plugins that would only import an unused library in the summary."""
    pm = session.config.pluginmanager
    for name, library in IDLE_UNLESS_IMPORTED.items():
        if library not in sys.modules and pm.get_plugin(name) is not None:
            pm.unregister(name=name)


def pytest_addoption(parser: pytest.Parser) -> None:
    _add_fork_options(parser)
    _add_load_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    enable_stack_dumps()  # every process of the run: where it was, should it not stop
    if hasattr(config, "workerinput"):
        return  # an xdist worker: silenced at session start (terminal.py)
    # --ptd-load-users N: the load engine; --ptd-workers N: the fork engine (None otherwise)
    engine = configure_load(config) or configure_fork(config)
    writer = engine.open_writer() if engine is not None else open_from_env()
    if writer is not None:
        config.pluginmanager.register(Reporter(config, writer), REPORTER_NAME)


def pytest_unconfigure(config: pytest.Config) -> None:
    remove_dir(config)


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    from .scheduling.xdist import make_scheduler

    return make_scheduler(config, log)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist controller, per worker: where to tell PTD's loadgroup scheduler the groups."""
    from .scheduling.xdist import ptd_schedules

    config = node.config
    if ptd_schedules(config) and config.getoption("dist") == "loadgroup":
        node.workerinput[DIR_KEY] = controller_dir(config)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """xdist worker: no terminal output nor summaries, which xdist would throw away.
    Controller: follow rerunfailures' worker connections (before xdist starts the workers)."""
    if hasattr(session.config, "workerinput"):
        silence_terminal(session.config)
    else:
        track_status_db(session.config)


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_handlecrashitem(crashitem: str, report: Any, sched: Any) -> None:
    """A worker died running ``crashitem``: before rerunfailures decides whether to run it
    again, let its server read what the dead worker sent last (the test's rerun count, sent
    without waiting for an answer just before the test ran), in both engines."""
    config = getattr(sched, "config", None)
    if config is not None:
        settle_status_db(config)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """xdist worker: the groups of the collected tests, before xdist sends the collection."""
    if hasattr(session.config, "workerinput"):
        write_worker_groups(session.config, session.items)
