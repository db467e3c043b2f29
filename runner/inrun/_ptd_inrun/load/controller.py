"""The load engine's controller: the run's pytest process, which collects, forks the load
processes, relays their events and says when the load is over.

It never runs a test. After collection it emits ``load_start``, forks ``processes`` children
(``process.load_main``) that inherit the collected session, and then only reads their pipes:
their ``load_tick`` / ``load_error`` events go to the event stream as they come (through the
thread-less ``LoopWriter``, so no thread is alive at fork time), their warnings to the run's
log and page. When every child has exited it emits ``load_stop`` with the reason (cancelled,
duration or iterations) and pytest ends with exit status 0: the verdict (thresholds) is the
dashboard's.

SIGTERM / SIGINT: passed on to the children (a pool's ``killpg`` already did), which stop
gracefully; a child still there ``stop_grace`` + 5 s later is killed. A child that dies
otherwise is reported as PTD's own error (a warning and exit status 3, never silence).
"""

from __future__ import annotations

import contextlib
import gc
import os
import select
import signal
import sys
import time
from typing import Any

import pytest

from ..fork.nodes import describe_exit, stop_on_collection_errors
from ..fork.wire import FrameReader, LoopWriter, read_available, writer_from_env
from ..reporter import REPORTER_NAME, warn
from .histogram import Entry
from .http import preload
from .process import Settings, load_main

_UNITS = {"tests": "iterations", "requests": "requests"}
STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}
KILL_MARGIN = 5.0  # seconds after a child's own stop grace before it is killed


class _Child:
    def __init__(self, name: str, pid: int, fd: int) -> None:
        self.name = name
        self.pid = pid
        self.fd: int | None = fd
        self.reader = FrameReader()
        self.reason: str | None = None
        self.fatal: str | None = None
        self.status: int | None = None


class LoadEngine:
    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.writer: LoopWriter | None = None
        self.children: dict[int, _Child] = {}
        self.cancelled = False
        self.kill_at: float | None = None
        self.crashed: list[str] = []
        self.totals: dict[str, dict[str, Entry]] = {"tests": {}, "requests": {}}
        self.reason: str | None = None

    def open_writer(self) -> LoopWriter | None:
        self.writer = writer_from_env()
        return self.writer

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> bool | None:
        stop_on_collection_errors(session)
        if session.config.option.collectonly or not session.items:
            return None
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            self.run(session)
        finally:
            self._kill_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if self.crashed:
            session.shouldfail = "; ".join(self.crashed)
            raise session.Failed(session.shouldfail)
        return True

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self.cancelled:
            return
        self.cancelled = True
        self.kill_at = time.monotonic() + self.settings.stop_grace + KILL_MARGIN
        for child in self.children.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGTERM)

    # -- the run ---------------------------------------------------------------------------

    def run(self, session: pytest.Session) -> None:
        from ..fork.worker import prepare_fork, run_forked_child

        settings = self.settings
        nodeids = list(dict.fromkeys(item.nodeid for item in session.items))
        start = time.time()
        self._emit(
            "load_start",
            users=settings.users,
            spawn_rate=settings.spawn_rate,
            duration=settings.duration,
            iterations=settings.iterations,
            think_time=settings.think_time,
            processes=settings.processes,
            tests=nodeids,
        )
        prepare_fork()
        preload()  # requests, once, in the pages the children share
        gc.collect()
        gc.freeze()  # the collected session stays shared (copy-on-write) by the children
        pm = self.config.pluginmanager
        controller_only = [pm.get_plugin(REPORTER_NAME), self, _junit_plugin(self.config)]
        for index in range(settings.processes):
            if self.cancelled:
                break
            read_fd, write_fd = os.pipe()
            close_in_child = [read_fd] + [c.fd for c in self.children.values() if c.fd is not None]
            if self.writer is not None:
                close_in_child.append(self.writer.fd)
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            # A cancel (the pool's killpg reaches every process) must not land in a child
            # before it has its own handlers: the controller's, inherited, would swallow it.
            # Blocked across the fork, it waits pending until the child listens.
            mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
            pid = os.fork()
            if pid:
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            else:
                run_forked_child(
                    _child_main, session, index, settings, start, write_fd, close_in_child,
                    controller_only, os.getppid(),
                )  # fmt: skip
            os.close(write_fd)
            os.set_blocking(read_fd, False)
            self.children[pid] = _Child(f"p{index}", pid, read_fd)
        if self.cancelled:  # a signal while forking: children forked after it ask too
            self.cancelled = False
            self._on_signal(signal.SIGTERM, None)
        self._loop()
        reasons = [c.reason for c in self._done if c.reason]
        if self.cancelled or "cancelled" in reasons or not reasons:
            reason = "cancelled"
        elif "duration" in reasons:
            reason = "duration"
        else:
            reason = "iterations"
        self.reason = reason
        self._emit("load_stop", reason=reason)

    def _loop(self) -> None:
        self._done: list[_Child] = []
        while self.children:
            writer = self.writer
            rlist = [c.fd for c in self.children.values() if c.fd is not None]
            wlist: list[int] = []
            timeout = 0.2
            if writer is not None and writer.pending:
                writer.flush()
                if writer.pending:
                    wlist.append(writer.fd)
            readable, writable, _ = select.select(rlist, wlist, [], timeout)
            if writable and writer is not None:
                writer.flush(force=True)
            for child in list(self.children.values()):
                if child.fd is not None and child.fd in readable:
                    self._read(child)
            self._reap()
            if self.kill_at is not None and time.monotonic() > self.kill_at:
                for child in self.children.values():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(child.pid, signal.SIGKILL)

    def _read(self, child: _Child) -> None:
        assert child.fd is not None
        data, eof = read_available(child.fd)
        for message in child.reader.feed(data) if data else ():
            kind = message[0]
            if kind == "events":
                for event in message[1]:
                    if self.writer is not None:
                        self.writer.emit(event)
                    if event["type"] == "load_tick":
                        self._add_up(event)
            elif kind == "warning":
                warn(self.config, message[1])
            elif kind == "bye":
                child.reason = message[1]
            elif kind == "fatal":
                child.fatal = message[1]
        if eof:
            os.close(child.fd)
            child.fd = None

    def _reap(self) -> None:
        for pid, child in list(self.children.items()):
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done, status = pid, 0
            if not done:
                continue
            if child.fd is not None:
                self._read(child)
                if child.fd is not None:
                    os.close(child.fd)
                    child.fd = None
            del self.children[pid]
            self._done.append(child)
            if child.reason is None and not self.cancelled:
                message = f"load process {child.name} died ({describe_exit(status)})"
                if child.fatal:
                    message += "\n" + child.fatal
                warn(self.config, message)
                self.crashed.append(message.splitlines()[0])

    def _kill_all(self) -> None:
        """No child outlives the controller's loop (an interruption, an error of ours)."""
        for pid in list(self.children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
            child = self.children.pop(pid)
            if child.fd is not None:
                with contextlib.suppress(OSError):
                    os.close(child.fd)

    def _add_up(self, tick: dict) -> None:
        for part, totals in self.totals.items():
            for name, data in tick[part].items():
                totals.setdefault(name, Entry()).merge(Entry.from_dict(data))

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        """The load's figures in the run's log: per test and per endpoint."""
        if self.reason is None:
            return
        write = terminalreporter.write_line
        terminalreporter.section(f"load: {self.settings.users} users, stopped ({self.reason})")
        for part, totals in self.totals.items():
            for name, entry in sorted(totals.items()):
                f = entry.figures()
                write(
                    f"{name}: {f['count']} {_UNITS[part]}, {f['failures']} failed, "
                    f"mean {f['mean_ms'] or 0:.1f} ms, p50 {f['p50_ms'] or 0:g} ms, "
                    f"p95 {f['p95_ms'] or 0:g} ms, max {f['max_ms'] or 0:.1f} ms"
                )

    def _emit(self, type_: str, **fields: Any) -> None:
        reporter = self.config.pluginmanager.get_plugin(REPORTER_NAME)
        if reporter is not None:
            reporter.emit(type_, **fields)


def _junit_plugin(config: pytest.Config) -> Any:
    try:
        from _pytest.junitxml import xml_key
    except ImportError:  # pragma: no cover
        return None
    return config.stash.get(xml_key, None)


def _child_main(
    session: pytest.Session,
    index: int,
    settings: Settings,
    start: float,
    res_fd: int,
    close_fds: list[int],
    controller_only: list[Any],
    parent_pid: int,
) -> int:
    """A load process: become an xdist-like worker ``gw<index>``, then run the users."""
    from ..fork.safety import isolate_inherited
    from ..fork.worker import die_with_parent, setup_worker

    # Until the load process listens (load_main), a SIGTERM only asks it to stop; never the
    # controller's handler, inherited with the fork (the signals were blocked across it).
    early: list[int] = []
    for sig in STOP_SIGNALS:
        signal.signal(sig, lambda signum, frame: early.append(signum))
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    die_with_parent(parent_pid)
    for fd in close_fds:
        with contextlib.suppress(OSError):
            os.close(fd)
    isolate_inherited(keep=(res_fd,))
    workerinput = {
        "workerid": f"gw{index}",
        "workercount": settings.processes,
        "testrunuid": f"load-{parent_pid}",
        "mainargs": list(session.config.args),
    }
    setup_worker(session.config, f"gw{index}", workerinput, controller_only, None)
    return load_main(session, index, settings, start, res_fd, early=early)
