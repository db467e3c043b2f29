"""The in-run pytest plugin: reports the run as JSON-lines events and provides the scheduler.

Loaded in the run's pytest process with ``-p _ptd_inrun.plugin``. Active only in the
controlling process (xdist workers load it too, and do nothing). Events go to the descriptor
named by ``PTD_EVENTS_FD``; without it nothing is emitted but the scheduler still works.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import pytest

from .events import EventWriter, open_from_env
from .fork import PLUGIN_NAME as FORK_PLUGIN
from .fork import addoption as _add_fork_options
from .fork import configure as configure_fork

LONGREPR_LIMIT = 4000
_REPORTER_NAME = "ptd-reporter"
# Plugins whose end-of-session hooks import their library even when no test used it, and the
# library: hypothesis's terminal summary imports hypothesis (~0.9 s of CPU) to look for files
# it may have written. If the library is not imported by the end of the session, no test in this
# process used it and, in a controller (fork or xdist), no collected test was decorated with it:
# the hooks have nothing to report.
IDLE_UNLESS_IMPORTED = {"hypothesispytest": "hypothesis"}


def _worker_of(report: Any) -> str:
    node = getattr(report, "node", None)
    gateway = getattr(node, "gateway", None)
    return str(getattr(gateway, "id", None) or "gw0")


def _longrepr(report: Any) -> str | None:
    longrepr = getattr(report, "longrepr", None)
    if longrepr is None:
        text = None
    elif isinstance(longrepr, tuple) and len(longrepr) == 3:
        text = str(longrepr[2])  # skip: (path, lineno, reason)
    else:
        text = str(longrepr)
    wasxfail = getattr(report, "wasxfail", None)
    if wasxfail and not text:
        text = f"xfail: {wasxfail}" if wasxfail else None
    if text and len(text) > LONGREPR_LIMIT:
        text = text[: LONGREPR_LIMIT - 15] + "\n...[truncated]"
    return text


def _phase_outcome(report: Any) -> str | None:
    """What this phase's report says about the attempt; None when it decides nothing."""
    outcome = report.outcome
    xfail = hasattr(report, "wasxfail")
    if outcome == "rerun":
        return "rerun"
    if outcome == "skipped":
        return "xfailed" if xfail else "skipped"
    if outcome == "failed":
        return "failed" if report.when == "call" else "error"
    if report.when == "call":  # passed
        return "xpassed" if xfail else "passed"
    return None


class _Attempt:
    __slots__ = ("start", "stop", "duration", "outcome", "when", "longrepr")

    def __init__(self) -> None:
        self.start: float | None = None
        self.stop: float | None = None
        self.duration = 0.0
        self.outcome: str | None = None
        self.when: str | None = None
        self.longrepr: str | None = None

    def add(self, report: Any) -> None:
        start = getattr(report, "start", None)
        stop = getattr(report, "stop", None)
        if self.start is None and start:
            self.start = float(start)
        if stop:
            self.stop = float(stop)
        self.duration += float(getattr(report, "duration", 0.0) or 0.0)
        outcome = _phase_outcome(report)
        if outcome is None:
            return
        # The first decisive phase wins, except that a failing teardown spoils a pass/skip.
        if self.outcome is None or (
            outcome in ("error", "rerun")
            and self.outcome in ("passed", "xpassed", "skipped", "xfailed")
        ):
            self.outcome, self.when, self.longrepr = outcome, report.when, _longrepr(report)


class Reporter:
    """Turns pytest/xdist hooks of the controlling process into events."""

    def __init__(self, config: pytest.Config, writer: EventWriter) -> None:
        self.config = config
        self.writer = writer
        self.pending: dict[tuple[str, str], _Attempt] = {}
        self.attempts: dict[str, int] = {}
        self.collected_sent = False
        self.finished = False

    @property
    def distributed(self) -> bool:
        return self.config.pluginmanager.hasplugin("dsession")

    def emit(self, type_: str, **fields: Any) -> None:
        self.writer.emit({"type": type_, "time": time.time(), **fields})

    def _workers(self) -> int:
        if not self.distributed:
            return 1
        count = 0
        for spec in getattr(self.config.option, "tx", None) or []:
            head, star, _ = str(spec).partition("*")
            count += int(head) if star and head.isdigit() else 1
        return count or int(getattr(self.config.option, "numprocesses", 0) or 1)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        fork = self.config.pluginmanager.get_plugin(FORK_PLUGIN)  # it emits worker_up itself
        workers = fork.workers if fork is not None else self._workers()
        self.emit("session_start", pid=os.getpid(), workers=workers)
        if not self.distributed and fork is None:
            self.emit("worker_up", worker="gw0")

    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        if not self.collected_sent and not self.distributed:
            self.collected_sent = True
            self.emit("collected", count=len(session.items))

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.emit("collect_error", nodeid=report.nodeid, longrepr=_longrepr(report))

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: Any) -> None:
        if not self.collected_sent:
            self.collected_sent = True
            self.emit("collected", count=len(ids))

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodeready(self, node: Any) -> None:
        self.emit("worker_up", worker=str(node.gateway.id))

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        self.emit(
            "worker_down",
            worker=str(node.gateway.id),
            crashed=error is not None,
            error=None if error is None else str(error),
        )

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        worker = _worker_of(report)
        key = (worker, report.nodeid)
        if report.when == "???":  # xdist: the worker died while running this test
            self._crashed(key, report)
            return
        attempt = self.pending.get(key)
        if attempt is None:
            attempt = self.pending[key] = _Attempt()
        attempt.add(report)
        if report.when == "teardown":
            del self.pending[key]
            self._emit_test(report.nodeid, worker, attempt)

    def _crashed(self, key: tuple[str, str], report: Any) -> None:
        attempt = self.pending.pop(key, None) or _Attempt()
        now = time.time()
        attempt.start = attempt.start or now
        attempt.stop = now
        # rerunfailures turns a crash it reschedules into a "rerun" attempt.
        attempt.outcome = "rerun" if report.outcome == "rerun" else "crashed"
        attempt.when = "???"
        attempt.longrepr = _longrepr(report)
        self._emit_test(report.nodeid, key[0], attempt)

    def _emit_test(self, nodeid: str, worker: str, attempt: _Attempt) -> None:
        number = self.attempts.get(nodeid, 0)
        self.attempts[nodeid] = number + 1
        start = attempt.start if attempt.start is not None else time.time()
        stop = attempt.stop if attempt.stop is not None else start
        self.emit(
            "test",
            nodeid=nodeid,
            worker=worker,
            outcome=attempt.outcome or "passed",
            attempt=number,
            when=attempt.when or "call",
            start=start,
            stop=stop,
            duration=attempt.duration,
            longrepr=attempt.longrepr,
        )

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        self.finished = True
        self.emit("session_finish", exitstatus=int(exitstatus))
        self.writer.close()

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        self.writer.close()


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Unregister the plugins that would only import an unused library in the summary."""
    pm = session.config.pluginmanager
    for name, library in IDLE_UNLESS_IMPORTED.items():
        if library not in sys.modules and pm.get_plugin(name) is not None:
            pm.unregister(name=name)


def pytest_addoption(parser: pytest.Parser) -> None:
    _add_fork_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):
        # xdist discards a worker's terminal output, yet its end-of-session summary hooks
        # still run, and some are slow (hypothesis imports itself there: ~1.5 s per worker).
        # The controller prints the real summary.
        config.option.no_summary = True
        return
    engine = configure_fork(config)  # --ptd-workers N: the fork engine (None otherwise)
    writer = engine.open_writer() if engine is not None else open_from_env()
    if writer is not None:
        config.pluginmanager.register(Reporter(config, writer), _REPORTER_NAME)


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if os.environ.get("PTD_SCHEDULER", "") == "xdist":
        return None
    from .xdist_sched import make_scheduler

    return make_scheduler(config, log)
