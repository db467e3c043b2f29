"""The fork engine's controller: collect once, fork N workers, dispatch longest-first.

The controller is the ordinary pytest process. It collects, then (in ``pytest_runtestloop``)
forks N workers that inherit the collected session (``fork.worker``). It never runs a test:
it hands out collection indices with the LPT core of ``scheduling.core``, replays the reports
the workers send through ``pytest_runtest_logreport`` (so terminal output, ``--junitxml`` and
the event Reporter see one ordinary session) and forks a replacement when a worker dies.

The controller never starts a thread (its events go through ``fork.wire.LoopWriter``), so
every fork, replacements included, happens in a single-threaded process. Its loop can watch
more than its workers (``_io_wait``: a shard's request to the dashboard, ``fork.remote``).
The dispatch loop and the handling of a dying worker share their state and read best side
by side; the options, wire, nodes (and ending them all) and plugins live apart.
"""

from __future__ import annotations

import contextlib
import gc
import os
import select
import sys
import threading
import time
import uuid
from typing import Any

import pytest

from ..compat import fork_gaps, terminal_gaps
from ..groups import item_groups, publish
from ..reporter import REPORTER_NAME, warn
from ..scheduling.core import LPTScheduler, load_durations
from .nodes import Handle, WorkerNode, describe_exit, kill_all, stop_on_collection_errors
from .plugins import handle_crash, node_down, track_status_db
from .wire import LoopWriter, pack, read_available, write_all, writer_from_env

READ_EVERY = 0.005  # seconds between reads of a worker's results while it does not ring


class ForkEngine:
    def __init__(self, config: pytest.Config, workers: int, mode: str) -> None:
        self.config = config
        self.workers = workers
        self.mode = mode
        self.max_restarts = config.getoption("ptd_max_restarts", None)
        if self.max_restarts is None:
            self.max_restarts = 4 * workers
        self.restarts = 0
        self.testrun_uid = uuid.uuid4().hex
        self.writer: LoopWriter | None = None
        self.handles: dict[str, Handle] = {}
        self.nodes: dict[str, WorkerNode] = {}
        self.core: LPTScheduler | None = None
        self.session: pytest.Session | None = None
        self.stopping = False
        self.basetemp = None

    def open_writer(self) -> LoopWriter | None:
        self.writer = writer_from_env()
        return self.writer

    # -- hooks -----------------------------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> bool | None:
        stop_on_collection_errors(session)
        if session.config.option.collectonly:
            return None
        self.session = session
        try:
            self.run(session)
        finally:
            self._kill_all()
        if session.shouldfail:
            raise session.Failed(session.shouldfail)
        if session.shouldstop:
            raise session.Interrupted(session.shouldstop)
        return True

    # -- the run ---------------------------------------------------------------------------

    def run(self, session: pytest.Session) -> None:
        items = session.items
        if not items:
            return
        durations = load_durations(os.environ.get("PTD_DURATIONS_FILE"))
        ids = [item.nodeid for item in items]
        groups = None
        if self.mode == "loadgroup":  # from the marks: the collected items are here
            groups = item_groups(items)
            publish(self.config, ids, groups)
        self.core = self.make_core(session, ids, durations, groups)
        factory = getattr(self.config, "_tmp_path_factory", None)
        if factory is not None:
            with contextlib.suppress(Exception):
                self.basetemp = factory.getbasetemp()
        self._warn_threads()
        for gap in terminal_gaps(self.config) + fork_gaps(self.config, session):
            warn(self.config, gap)
        # Everything alive now is the collected session the workers inherit: keep the garbage
        # collector off those pages, or every worker would copy them all (copy-on-write).
        from .worker import prepare_fork

        prepare_fork()
        track_status_db(self.config)
        gc.collect()
        gc.freeze()
        for i in range(self.workers):  # all known to the scheduler before it hands out work
            self._spawn(f"gw{i}", dispatch=False)
        self._dispatch_all()
        self._loop()

    def make_core(self, session, ids, durations, groups) -> LPTScheduler:
        """The scheduler (a shard of a run over several machines: fork.remote's)."""
        return LPTScheduler(ids, durations, self.mode, groups=groups)

    def _loop(self) -> None:
        next_read = 0.0
        while self.handles:
            # Workers write each test's results as it ends; they are read every READ_EVERY
            # s, not at every write (each wake-up took a core from the workers), unless a
            # worker rings (it is down to its last items, or its pipe is full) or dies.
            now = time.monotonic()
            reading = now >= next_read
            rlist: list[int] = []
            for handle in self.handles.values():
                if handle.res_fd is not None and (reading or handle.pidfd is None):
                    rlist.append(handle.res_fd)
                rlist += [fd for fd in (handle.wake_fd, handle.pidfd) if fd is not None]
            wlist: list[int] = []
            # A worker without a pidfd (none where os.pidfd_open is missing or fails) is
            # polled: waitpid below.
            polled = any(h.pidfd is None for h in self.handles.values())
            timeout = 0.05 if polled else None
            if not reading:
                timeout = next_read - now if timeout is None else min(timeout, next_read - now)
            extra, io_due = self._io_wait()
            rlist += extra
            if io_due is not None:
                timeout = io_due if timeout is None else min(timeout, io_due)
            writer = self.writer
            if writer is not None and writer.pending:
                due = writer.due_in() or 0.0
                if due <= 0:
                    writer.flush()
                    if writer.pending:
                        wlist.append(writer.fd)
                else:
                    timeout = due if timeout is None else min(timeout, due)
            readable, writable, _ = select.select(rlist, wlist, [], timeout)
            if writable and writer is not None:
                writer.flush(force=True)
            ready = set(readable)
            looked = False
            for handle in list(self.handles.values()):
                rung = closed = False
                if handle.wake_fd is not None and handle.wake_fd in ready:
                    rung = True
                    _, closed = read_available(handle.wake_fd)
                    if closed:  # it is exiting: nothing more for it
                        os.close(handle.wake_fd)
                        handle.wake_fd = None
                scheduled = handle.res_fd is not None and handle.res_fd in ready
                if rung or scheduled:
                    looked |= scheduled  # (a ring does not put the next look off)
                    self._read(handle, dispatch=not closed)
                if handle.pidfd is not None:
                    exited = handle.pidfd in ready
                else:  # no pidfd: poll
                    pid, status = os.waitpid(handle.pid, os.WNOHANG)
                    if pid:
                        handle.status = status
                    exited = bool(pid)
                if exited:
                    self._on_exit(handle)
            if looked:
                next_read = time.monotonic() + READ_EVERY
            if extra or io_due is not None:
                self._io_ready(ready)

    def _io_wait(self) -> tuple[list[int], float | None]:
        """More descriptors for the loop to watch, and when to look at them anyway: a
        request to the dashboard on its way (fork.remote's)."""
        return [], None

    def _io_ready(self, ready: set[int]) -> None:
        """After each wait that watched ``_io_wait``'s descriptors."""

    # -- workers ---------------------------------------------------------------------------

    def _spawn(self, worker_id: str, dispatch: bool = True) -> None:
        from .worker import Ends, run_forked_child, worker_main

        assert self.core is not None and self.session is not None
        workerinput = {
            "workerid": worker_id,
            "workercount": self.workers,
            "testrunuid": self.testrun_uid,
            "mainargs": list(self.config.args),
        }
        node = self.nodes.setdefault(worker_id, WorkerNode(worker_id, workerinput))
        cmd_r, cmd_w = os.pipe()
        res_r, res_w = os.pipe()
        wake_r, wake_w = os.pipe()
        ends = Ends(cmd_r, res_w, wake_w)
        close_in_child = [cmd_w, res_r, wake_r]
        for other in self.handles.values():
            close_in_child += other.fds()
        if self.writer is not None:
            close_in_child.append(self.writer.fd)
        pm = self.config.pluginmanager
        controller_only = [pm.get_plugin(REPORTER_NAME), self, self._junit_plugin()]
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        pid = os.fork()
        if pid == 0:  # the worker
            run_forked_child(
                worker_main,
                self.session,
                worker_id,
                workerinput,
                ends,
                os.getppid(),
                close_in_child,
                controller_only,
                self.basetemp,
            )
        for fd in ends:
            os.close(fd)
        os.set_blocking(res_r, False)
        os.set_blocking(wake_r, False)
        handle = Handle(worker_id, pid, cmd_w, res_r, wake_r)
        with contextlib.suppress(AttributeError, OSError):
            handle.pidfd = os.pidfd_open(pid)
        self.handles[worker_id] = handle
        node.workeroutput = {}
        self.core.add_worker(worker_id)
        self._emit("worker_up", worker=worker_id, pid=pid)
        if dispatch:
            self._dispatch(handle)

    def _junit_plugin(self) -> Any:
        try:
            from _pytest.junitxml import xml_key
        except ImportError:  # pragma: no cover
            return None
        return self.config.stash.get(xml_key, None)

    def _send(self, handle: Handle, messages: list[tuple]) -> None:
        # A worker that is gone is handled from the loop (its pidfd / pipe EOF).
        with contextlib.suppress(OSError):
            write_all(handle.cmd_fd, pack(messages))

    def _dispatch(self, handle: Handle) -> None:
        core = self.core
        if core is None or handle.shutdown_sent or handle.stop_sent or self.stopping:
            return
        indices = core.next_for_worker(handle.id)
        if indices:
            self._send(handle, [("run", indices)])
        if not core.has_queued:
            # Nothing left to hand out: every worker runs what it holds and leaves (one may
            # hold a single item, left without a next one for the others to have theirs).
            for other in list(self.handles.values()) if core.shuts_all_down else [handle]:
                if not (other.shutdown_sent or other.stop_sent):
                    other.shutdown_sent = True
                    self._send(other, [("shutdown",)])

    def _dispatch_all(self) -> None:
        for handle in list(self.handles.values()):
            self._dispatch(handle)

    def _stop_all(self) -> None:
        self.stopping = True
        for handle in self.handles.values():
            if not handle.stop_sent:
                handle.stop_sent = True
                self._send(handle, [("stop",)])

    # -- results ---------------------------------------------------------------------------

    def _read(self, handle: Handle, dispatch: bool = True) -> None:
        """Handle what the worker wrote, then send it more work (``dispatch``: not to one
        that is exiting, whose items would only come back, merged, as one requeued unit)."""
        if handle.res_fd is None:
            return
        data, eof = read_available(handle.res_fd)
        if data:
            for frame in handle.reader.feed(data):
                for message in frame:
                    self._handle_message(handle, message)
            if dispatch:
                self._dispatch(handle)
        if eof:
            os.close(handle.res_fd)
            handle.res_fd = None

    def _handle_message(self, handle: Handle, message: tuple) -> None:
        kind = message[0]
        if kind == "item":
            _, index, events = message
            self._replay(handle.id, events)
            assert self.core is not None
            self.core.mark_complete(handle.id, index)
            session = self.session
            if session is not None and (session.shouldfail or session.shouldstop):
                self._stop_all()
        elif kind == "bye":
            handle.said_bye = True
            if len(message) > 1:  # its config.workeroutput, for pytest_testnodedown
                self.nodes[handle.id].workeroutput = message[1]
        elif kind == "fatal":
            handle.fatal = message[1]

    def _replay(self, worker_id: str, events: list[tuple]) -> None:
        hook = self.config.hook
        node = self.nodes[worker_id]
        for event in events:
            kind = event[0]
            if kind == "report":
                report = hook.pytest_report_from_serializable(config=self.config, data=event[1])
                report.node = node
                hook.pytest_runtest_logreport(report=report)
            elif kind == "start":
                hook.pytest_runtest_logstart(nodeid=event[1], location=event[2])
            elif kind == "finish":
                hook.pytest_runtest_logfinish(nodeid=event[1], location=event[2])
            elif kind == "warning":
                import warnings

                message, category, filename, lineno, line = event[1]
                warning = warnings.WarningMessage(message, category, filename, lineno, line=line)
                hook.pytest_warning_recorded.call_historic(
                    kwargs={
                        "warning_message": warning,
                        "when": event[2],
                        "nodeid": event[3],
                        "location": event[4],
                    }
                )

    # -- exits and crashes -----------------------------------------------------------------

    def _on_exit(self, handle: Handle) -> None:
        if handle.res_fd is not None:  # whatever it wrote before dying
            self._read(handle, dispatch=False)
        status = handle.status
        if status is None:
            try:
                _, status = os.waitpid(handle.pid, 0)
            except ChildProcessError:
                status = 0
        for fd in handle.fds():
            with contextlib.suppress(OSError):
                os.close(fd)
        handle.res_fd = handle.wake_fd = handle.pidfd = None
        del self.handles[handle.id]
        assert self.core is not None
        unfinished = self.core.remove_worker(handle.id)
        clean = handle.said_bye and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        if clean and (not unfinished or self.stopping):  # stopped early (-x): not a crash
            node_down(self.config, self.nodes[handle.id], None)  # the worker_down event
            return
        how = describe_exit(status)
        if unfinished and not self.stopping:
            self._report_crash(handle, unfinished[0], how)
        error = f"worker {handle.id!r} crashed ({how})"
        if handle.fatal:
            error += "\n" + handle.fatal
        node_down(self.config, self.nodes[handle.id], error)
        if self.stopping or not self.core.has_queued:  # (a rerun of the crash is queued)
            return
        if self.restarts >= self.max_restarts:
            if not any(not h.shutdown_sent for h in self.handles.values()):
                assert self.session is not None
                self.session.shouldstop = (
                    f"{self.restarts} workers replaced, the limit (--ptd-max-restarts); stopping"
                )
                self._stop_all()
            else:
                self._dispatch_all()
            return
        self.restarts += 1
        self._spawn(handle.id)

    def _report_crash(self, handle: Handle, index: int, how: str) -> None:
        assert self.session is not None
        item = self.session.items[index]
        message = f"worker {handle.id!r} crashed while running {item.nodeid!r} ({how})"
        if handle.fatal:
            message += "\n" + handle.fatal
        report = pytest.TestReport(
            item.nodeid,
            item.location,
            {},
            "failed",
            message,
            "???",
            worker_id=handle.id,
            item_index=index,
            testrun_uid=self.testrun_uid,
        )
        report.node = self.nodes[handle.id]
        # As xdist does: e.g. rerunfailures queues the test again and makes this a "rerun".
        handle_crash(self.config, report, self.session.items, self.core, index)
        hook = self.config.hook
        hook.pytest_runtest_logreport(report=report)
        hook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)

    def _kill_all(self) -> None:
        """After an interruption: no worker may outlive the controller's loop."""
        kill_all(self.handles)

    # -- events ----------------------------------------------------------------------------

    def _emit(self, type_: str, **fields: Any) -> None:
        reporter = self.config.pluginmanager.get_plugin(REPORTER_NAME)
        if reporter is not None:
            reporter.emit(type_, **fields)

    def _warn_threads(self) -> None:
        others = [
            t
            for t in threading.enumerate()
            if t is not threading.main_thread() and "run_server" not in t.name
        ]
        if others:
            names = ", ".join(sorted(t.name for t in others))
            sys.stderr.write(
                f"ptd fork engine: threads alive at fork time ({names}); they "
                "do not exist in the workers\n"
            )
