"""The worker side of the fork engine: a process forked from the controller after collection.

It inherits the collected session, makes itself look like an xdist worker, then runs the
collection indices the controller sends, in order. It runs an item only once it knows the
next one (or that there is none), so ``nextitem`` is right for fixture teardown, and sends
each item's logstart / reports / warnings / logfinish back as one message, written to the
pipe as soon as the item is over (a crash in the next loses nothing of it); the controller
reads that pipe every few ms, or at once when the worker rings its wake pipe (down to its
last items, or the pipe is full). It never runs
session-finish hooks (junitxml, terminal summary, caches are the controller's) and leaves
with ``os._exit``.
"""

from __future__ import annotations

import collections
import contextlib
import os
import random
import select
import signal
import sys
import traceback
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from ..terminal import silence_terminal
from . import plugins
from .safety import isolate_inherited
from .wire import FrameReader, pack, write_all

PR_SET_PDEATHSIG = 1


_prctl: Any = None


def prepare_fork() -> None:
    """In the controller, before forking: load libc's prctl once for every worker (importing
    ctypes in each of N workers cost them 10-40 ms of CPU apiece)."""
    global _prctl
    if _prctl is None:
        try:
            import ctypes

            _prctl = ctypes.CDLL(None, use_errno=True).prctl
        except (OSError, AttributeError):  # pragma: no cover - not Linux / exotic libc
            _prctl = False


def die_with_parent(parent_pid: int) -> None:
    """SIGKILL this process when the controller dies (Linux), and check it is still there."""
    if _prctl:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the controller died before prctl took effect
        os._exit(1)


def serialize_warning(message: warnings.WarningMessage) -> tuple:
    """A picklable form of a WarningMessage (classes travel by reference: same modules)."""
    import pickle

    msg, category = message.message, message.category
    try:
        pickle.dumps((msg, category))
    except Exception:
        text = f"{type(msg).__module__}.{type(msg).__name__}: {msg}"
        msg, category = (str(msg) if isinstance(msg, Warning) else text), UserWarning
    return (msg, category, str(message.filename), message.lineno, message.line)


class WorkerReporter:
    """Collects what pytest reports about each item, to send it to the controller."""

    def __init__(self, config: pytest.Config, worker_id: str, testrun_uid: str) -> None:
        self.config = config
        self.worker_id = worker_id
        self.testrun_uid = testrun_uid
        self.index: int | None = None
        self.events: list[tuple] = []

    def pytest_runtest_logstart(self, nodeid: str, location: Any) -> None:
        self.events.append(("start", nodeid, location))

    def pytest_runtest_logfinish(self, nodeid: str, location: Any) -> None:
        self.events.append(("finish", nodeid, location))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        data = self.config.hook.pytest_report_to_serializable(config=self.config, report=report)
        data["worker_id"] = self.worker_id
        data["item_index"] = self.index
        data["testrun_uid"] = self.testrun_uid
        self.events.append(("report", data))

    def pytest_warning_recorded(
        self, warning_message: warnings.WarningMessage, when: str, nodeid: str, location: Any
    ) -> None:
        self.events.append(("warning", serialize_warning(warning_message), when, nodeid, location))


class Ends(NamedTuple):
    """A worker's ends of its pipes with the controller."""

    cmd: int  # read: what to run
    res: int  # written: its results, as each item ends
    wake: int  # written: a byte, for the controller to read its results at once


class Worker:
    def __init__(
        self, session: pytest.Session, worker_id: str, workerinput: dict, ends: Ends
    ) -> None:
        self.session = session
        self.config = session.config
        self.items = session.items
        self.worker_id = worker_id
        self.cmd_fd, self.res_fd, self.wake_fd = ends
        for fd in (ends.res, ends.wake):  # a full result pipe rings (flush) before we wait
            os.set_blocking(fd, False)
        self.reader = FrameReader()
        self.pending: collections.deque[int] = collections.deque()
        self.shutdown = False
        self.stop = False
        self.outbox: list[tuple] = []
        self.reporter = WorkerReporter(self.config, worker_id, workerinput["testrunuid"])

    # -- talking to the controller ---------------------------------------------------------

    def send(self, message: tuple) -> None:
        self.outbox.append(message)

    def flush(self, urgent: bool = False) -> None:
        """Write what is in the outbox; ``urgent``: and ring, for it to be read at once."""
        if self.outbox:
            messages, self.outbox = self.outbox, []
            try:
                data = pack(messages)
            except Exception:  # an unpicklable user property or warning: degrade to text
                data = pack([_sanitize(m) for m in messages])
            write_all(self.res_fd, data, when_full=self.ring)
        if urgent:
            self.ring()

    def ring(self) -> None:
        with contextlib.suppress(OSError):  # full: rung already; closed: the controller left
            os.write(self.wake_fd, b"!")

    def receive(self, block: bool) -> None:
        if not block and not select.select([self.cmd_fd], [], [], 0)[0]:
            return
        data = os.read(self.cmd_fd, 1 << 16)
        if not data:  # the controller is gone
            self.stop = True
            return
        for frame in self.reader.feed(data):
            for message in frame:
                kind = message[0]
                if kind == "run":
                    self.pending.extend(message[1])
                elif kind == "shutdown":
                    self.shutdown = True
                elif kind == "stop":
                    self.stop = True

    # -- the loop --------------------------------------------------------------------------

    def run(self) -> int:
        hook = self.config.hook
        while True:
            self.receive(block=False)
            while not self.stop and len(self.pending) < 2 and not self.shutdown:
                self.receive(block=True)
            if self.stop or not self.pending:
                break
            index = self.pending.popleft()
            item = self.items[index]
            nextitem = self.items[self.pending[0]] if self.pending else None
            self.reporter.index = index
            self.reporter.events = []
            hook.pytest_runtest_protocol(item=item, nextitem=nextitem)
            self.send(("item", index, self.reporter.events))
            # Into the pipe before the next item runs: should that one kill this process,
            # what this one did is not lost with it (the controller reads a pipe after its
            # writer died), and the crash is the next one's alone. The controller reads the
            # pipe every few ms (fork.controller.READ_EVERY), at once if we ring: when we are
            # down to our last items, it must know before we wait for more.
            self.flush(urgent=len(self.pending) <= 2)
        self._teardown_all()
        # Saves its coverage; its workeroutput goes to plugins' pytest_testnodedown.
        self.send(("bye", plugins.finish_worker(self.config, self.session)))
        self.flush(urgent=True)
        return 0

    def _teardown_all(self) -> None:
        """What pytest's own session finish does for fixtures still set up (after a stop)."""
        state = getattr(self.session, "_setupstate", None)
        if state is None:
            return
        try:
            state.teardown_exact(None)
        except Exception:
            traceback.print_exc()


def _sanitize(message: tuple) -> tuple:
    if message[0] != "item":
        return message
    events = []
    for event in message[2]:
        if event[0] == "report":
            data = dict(event[1])
            data["user_properties"] = [
                (str(k), repr(v)) for k, v in data.get("user_properties") or []
            ]
            event = ("report", data)
        elif event[0] == "warning":
            msg, _category, filename, lineno, line = event[1]
            event = ("warning", (str(msg), UserWarning, filename, lineno, line), *event[2:])
        events.append(event)
    return ("item", message[1], events)


def setup_worker(
    config: pytest.Config,
    worker_id: str,
    workerinput: dict,
    controller_only: list[Any],
    basetemp: Path | None,
) -> None:
    """Turn the freshly forked copy of the controller into an xdist-like worker."""
    os.environ["PYTEST_XDIST_WORKER"] = worker_id
    os.environ["PYTEST_XDIST_WORKER_COUNT"] = str(workerinput["workercount"])
    os.environ["PYTEST_XDIST_TESTRUNUID"] = workerinput["testrunuid"]
    config.workerinput = workerinput  # type: ignore[attr-defined]
    config.workeroutput = {"workerid": worker_id}  # type: ignore[attr-defined]
    random.seed(os.urandom(16))
    np = sys.modules.get("numpy")
    if np is not None:
        with contextlib.suppress(Exception):
            np.random.seed(int.from_bytes(os.urandom(4), "little"))
    pm = config.pluginmanager
    for plugin in controller_only:
        if plugin is not None and pm.is_registered(plugin):
            pm.unregister(plugin)
    silence_terminal(config)
    # Global output capture: the controller's temporary files would be shared by every
    # worker (one file offset); give this process its own.
    capman = pm.get_plugin("capturemanager")
    if capman is not None and getattr(capman, "_global_capturing", None) is not None:
        with contextlib.suppress(Exception):
            capman.stop_global_capturing()
            capman.start_global_capturing()
            capman.suspend_global_capture()
    factory = getattr(config, "_tmp_path_factory", None)
    if basetemp is not None and hasattr(factory, "_given_basetemp"):
        # Like xdist: each worker gets <controller's basetemp>/popen-gwN.
        factory._given_basetemp = basetemp / f"popen-{worker_id}"
        factory._basetemp = None


def worker_main(
    session: pytest.Session,
    worker_id: str,
    workerinput: dict,
    ends: Ends,
    parent_pid: int,
    close_fds: list[int],
    controller_only: list[Any],
    basetemp: Path | None,
) -> int:
    die_with_parent(parent_pid)
    for fd in close_fds:
        with contextlib.suppress(OSError):
            os.close(fd)
    isolate_inherited(keep=ends)  # user code's import-time connections
    config = session.config
    setup_worker(config, worker_id, workerinput, controller_only, basetemp)
    plugins.setup_worker(config)  # rerunfailures' db: the controller's, as under xdist
    worker = Worker(session, worker_id, workerinput, ends)
    config.pluginmanager.register(worker.reporter, "ptd-fork-worker")
    try:
        return worker.run()
    except BaseException as exc:  # noqa: BLE001 - reported to the controller, then exit
        text = "".join(traceback.format_exception(exc))
        with contextlib.suppress(Exception):
            worker.send(("fatal", text))
            worker.flush(urgent=True)
        sys.stderr.write(text)
        return 3 if isinstance(exc, KeyboardInterrupt) else 1


def run_forked_child(target: Any, *args: Any) -> None:
    """Run ``target(*args)`` in a just-forked child and never return into the caller."""
    code = 1
    try:
        code = target(*args)
    except BaseException:  # noqa: BLE001
        with contextlib.suppress(Exception):
            traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)
