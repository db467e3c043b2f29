"""Turns the hooks of a run's controlling pytest process into PTD's events.

Shared by the in-run plugin (events to the runner over a descriptor) and the ingestion plugin
(``runner.client.plugin``: events to a dashboard over HTTP). Imports nothing of the fork engine, so
ingesting a plain ``pytest -n 4`` run does not load it.
"""

from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING, Any

import pytest

from .groups import NODE_GROUPS
from .ids import group_of
from .output import OutputBudget, sections_of

if TYPE_CHECKING:
    from .events import EventWriter

LONGREPR_LIMIT = 4000
FORK_PLUGIN = "ptd-fork"  # the name the fork engine registers under (fork.PLUGIN_NAME)
REPORTER_NAME = "ptd-reporter"  # the name the in-run plugin registers the Reporter under


def warn(config: pytest.Config, message: str) -> None:
    """Say loudly that PTD works in a degraded way: in the run's log and on its page.

    For what would otherwise go wrong silently, e.g. a pytest or plugin version that lacks
    something the engine uses.
    """
    sys.stderr.write(f"ptd warning: {message}\n")
    sys.stderr.flush()
    reporter = config.pluginmanager.get_plugin(REPORTER_NAME)
    if reporter is not None:
        reporter.emit("warning", message=message)


def plain_nodeid(config: pytest.Config, nodeid: str) -> tuple[str, str | None]:
    """``(node id without xdist's "@group" suffix, the test's xdist_group or None)``.

    The group comes from the test's marks when PTD scheduled the run (``groups.py``); for a
    run xdist scheduled itself (ingested runs) from the suffix xdist appended, if any.
    """
    group = (config.stash.get(NODE_GROUPS, None) or {}).get(nodeid)
    if group is None and getattr(config.option, "dist", None) == "loadgroup":
        group = group_of(nodeid)
    if group is not None and nodeid.endswith("@" + group):
        nodeid = nodeid[: -len(group) - 1]
    return nodeid, group


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
    __slots__ = ("start", "stop", "duration", "outcome", "when", "longrepr", "sections")

    def __init__(self) -> None:
        self.start: float | None = None
        self.stop: float | None = None
        self.duration = 0.0
        self.outcome: str | None = None
        self.when: str | None = None
        self.longrepr: str | None = None
        self.sections: dict[str, str] = {}  # a later phase's report repeats earlier sections

    def add(self, report: Any) -> None:
        start = getattr(report, "start", None)
        stop = getattr(report, "stop", None)
        if self.start is None and start:
            self.start = float(start)
        if stop:
            self.stop = float(stop)
        self.duration += float(getattr(report, "duration", 0.0) or 0.0)
        self.sections.update(sections_of(report))
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
        self.output = OutputBudget()  # what tests printed: caps and -rP, from the environment

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
        if attempt is not None and report.when == "setup":
            # A new attempt while the last one never reported its teardown: what
            # pytest-rerunfailures 14 does when it reruns a test. That attempt is over.
            del self.pending[key]
            self._emit_test(report.nodeid, worker, attempt)
            attempt = None
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
        nodeid, group = plain_nodeid(self.config, nodeid)
        number = self.attempts.get(nodeid, 0)
        self.attempts[nodeid] = number + 1
        start = attempt.start if attempt.start is not None else time.time()
        stop = attempt.stop if attempt.stop is not None else start
        outcome = attempt.outcome or "passed"
        self.emit(
            "test",
            nodeid=nodeid,
            worker=worker,
            outcome=outcome,
            attempt=number,
            when=attempt.when or "call",
            start=start,
            stop=stop,
            duration=attempt.duration,
            longrepr=attempt.longrepr,
            group=group,
            **self.output.keep(outcome, attempt.sections.items()),
        )

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        self.finished = True
        self.emit("session_finish", exitstatus=int(exitstatus))
        self.writer.close()

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        self.writer.close()
