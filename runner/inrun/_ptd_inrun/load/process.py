"""One load process: a fork of the run's pytest after collection, running its share of users.

Each user is a thread (``isolation`` says how one pytest session serves many): it loops over
the selected tests, in order from its own starting point so users spread over them, one pass
per iteration, waiting ``think_time`` after each test, until it has done ``iterations`` passes
or ``duration`` is over. Users start at ``spawn_rate`` (all processes together: user ``u``
starts ``u / spawn_rate`` s after load_start, in process ``u % processes``).

Every test run is measured with ``runtestprotocol(item, log=False)``: setup, call and
teardown, its function fixtures included; no report reaches the terminal, junitxml or the
event stream (an hour at 1,000 iterations/s would be 3.6 M rows), only the ``Recorder``'s
per-second deltas. A ticker thread sends them to the controller once a second.

SIGTERM / SIGINT ask for a graceful stop: no new iteration starts, the running ones get
``stop_grace`` seconds to finish, then the shared fixtures are torn down (a live server
stops), the last deltas are sent and the process exits. Users still running after the grace
are abandoned (the process exits under them).
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any

import pytest
from _pytest.runner import runtestprotocol

from ..fork.wire import pack, write_all
from . import http, isolation
from .recorder import Recorder, error_key

FAILURE_TYPES = ("AssertionError", "Failed")  # a failed check; anything else an exception


@dataclass(frozen=True)
class Settings:
    users: int
    processes: int
    spawn_rate: float | None
    duration: float | None
    iterations: int | None
    think_time: float
    stop_grace: float


class ErrorCatcher:
    """Keeps, on the item that ran, the first exception of an iteration (makereport sees the
    CallInfo; the reports ``runtestprotocol`` returns only carry formatted text)."""

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: Any, call: Any) -> Any:
        outcome = yield
        report = outcome.get_result()
        excinfo = call.excinfo
        if excinfo is not None and report.failed and getattr(item, "_ptd_error", None) is None:
            item._ptd_error = (call.when, excinfo.typename, str(excinfo.value), report)


class LoadProcess:
    def __init__(
        self, session: pytest.Session, index: int, settings: Settings, start: float, res_fd: int
    ) -> None:
        self.session = session
        self.index = index
        self.name = f"p{index}"
        self.settings = settings
        self.start = start
        self.deadline = start + settings.duration if settings.duration else None
        self.res_fd = res_fd
        self.recorder = Recorder(self.name, start)
        self.stop = threading.Event()
        self.tick_done = threading.Event()  # set: the ticker is done
        self.cancelled = False
        self.internal_error_sent = False
        self.hit_deadline = False
        self.active = 0
        self.active_lock = threading.Lock()
        self.send_lock = threading.Lock()
        self.items = list(session.items)
        # Each item's idle copies (isolation.clone): a user takes one to run the item and
        # gives it back, so copies number the peak concurrency per test, not users x tests.
        self.idle: list[list[Any]] = [[] for _ in self.items]
        self.idle_lock = threading.Lock()

    # -- to the controller -----------------------------------------------------------------

    def send(self, message: tuple) -> None:
        with self.send_lock, contextlib.suppress(OSError):
            write_all(self.res_fd, pack(message))

    def _on_signal(self, signum: int, frame: Any) -> None:
        # Once only: a cancel sends two SIGTERMs (the pool's killpg, then the controller's),
        # and a second handler run inside the first one's stop.set() (holding the Event's
        # lock) would wait on that lock forever.
        if self.cancelled:
            return
        self.cancelled = True
        self.stop.set()

    # -- the process -----------------------------------------------------------------------

    def listen(self) -> None:
        """SIGTERM / SIGINT: a graceful stop (first thing in the child, before any setup)."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)

    def run(self) -> int:
        config = self.session.config
        isolation.quiet_capture(config)
        self.shared = isolation.prepare_session(self.session)
        config.pluginmanager.register(ErrorCatcher(), "ptd-load-errors")
        http.install(self.recorder)
        ticker = threading.Thread(target=self._tick_loop, name="ptd-load-ticker", daemon=True)
        ticker.start()
        threads = self._spawn_users()
        finished = self._join(threads)
        if finished:
            for exc in self.shared.teardown():
                text = "".join(traceback.format_exception(exc))
                self.send(("warning", f"load process {self.name}: teardown error\n{text}"))
        else:
            self.send(("warning", f"load process {self.name}: users still running after "
                       f"{self.settings.stop_grace:g} s; left behind"))  # fmt: skip
        self.tick_done.set()
        ticker.join(2.0)
        self.recorder.set_users(0)
        self.send(("events", self.recorder.take(final=True)))
        reason = "cancelled" if self.cancelled else "duration" if self.hit_deadline else (
            "iterations")  # fmt: skip
        self.send(("bye", reason))
        return 0

    def _spawn_users(self) -> list[threading.Thread]:
        settings = self.settings
        threads = []
        for user in range(self.index, settings.users, settings.processes):
            if settings.spawn_rate:
                delay = self.start + user / settings.spawn_rate - time.time()
                if delay > 0 and self.stop.wait(delay):
                    break
            if self.stop.is_set() or self._past_deadline():
                break
            thread = threading.Thread(
                target=self._user, args=(user,), name=f"ptd-user-{user}", daemon=True
            )
            with self.active_lock:
                self.active += 1
                self.recorder.set_users(self.active)
            thread.start()
            threads.append(thread)
        return threads

    def _join(self, threads: list[threading.Thread]) -> bool:
        """Wait for the users; after a stop request, ``stop_grace`` seconds at most."""
        grace_end = None
        for thread in threads:
            while thread.is_alive():
                if self.stop.is_set() and grace_end is None:
                    grace_end = time.monotonic() + self.settings.stop_grace
                timeout = 0.2 if grace_end is None else grace_end - time.monotonic()
                if timeout <= 0:
                    return False
                thread.join(min(timeout, 0.2))
        return True

    def _past_deadline(self) -> bool:
        if self.deadline is not None and time.time() >= self.deadline:
            self.hit_deadline = True
            return True
        return False

    # -- a user ----------------------------------------------------------------------------

    def _user(self, user: int) -> None:
        try:
            isolation.enter_user(self.shared)
            http.user_started()
            order = list(range(len(self.items)))
            shift = user % len(order)
            order = order[shift:] + order[:shift]
            passes = 0
            limit = self.settings.iterations
            think = self.settings.think_time
            while not self.stop.is_set():
                for index in order:
                    if self.stop.is_set() or self._past_deadline():
                        return
                    self._run_item(index)
                    if think and self.stop.wait(think):
                        return
                passes += 1
                if limit and passes >= limit:
                    return
        except BaseException:  # noqa: BLE001 - PTD's own error: say so, end this user
            self.send(("warning", f"load user {user} in {self.name} stopped on an "
                       f"internal error\n{traceback.format_exc()}"))  # fmt: skip
        finally:
            with contextlib.suppress(Exception):
                http.user_stopped()
            with self.active_lock:
                self.active -= 1
                self.recorder.set_users(self.active)

    def _run_item(self, index: int) -> None:
        with self.idle_lock:
            idle = self.idle[index]
            item = idle.pop() if idle else None
        if item is None:
            item = isolation.clone(self.items[index])
        try:
            self._iteration(item)
        finally:
            with self.idle_lock:
                self.idle[index].append(item)

    def _iteration(self, item: Any) -> None:
        isolation.fresh_instance(item)
        item._report_sections = []
        item.user_properties = []
        item._ptd_error = None
        began = time.perf_counter()
        try:
            runtestprotocol(item, log=False, nextitem=None)
        except Exception as exc:  # noqa: BLE001 - pytest itself failed: PTD's error, said once
            ms = (time.perf_counter() - began) * 1000.0
            with contextlib.suppress(Exception):
                item.session._setupstate.teardown_exact(None)
            text = traceback.format_exc()
            if not self.internal_error_sent:
                self.internal_error_sent = True
                self.send(("warning", f"load process {self.name}: internal error\n{text}"))
            error = error_key(f"PTD {type(exc).__name__}", str(exc))
            self.recorder.test(item.nodeid, ms, "exception", error, text)
            return
        ms = (time.perf_counter() - began) * 1000.0
        caught = item._ptd_error
        if caught is None:
            self.recorder.test(item.nodeid, ms, None)
            return
        when, typename, message, report = caught
        kind = "failure" if when == "call" and typename in FAILURE_TYPES else "exception"
        error = error_key(typename, message)
        self.recorder.test(item.nodeid, ms, kind, error, _longrepr(report))

    # -- the ticker ------------------------------------------------------------------------

    def _tick_loop(self) -> None:
        second = 1
        while not self.tick_done.is_set():
            due = self.start + second + 0.02
            delay = due - time.time()
            if delay > 0:
                self.tick_done.wait(min(delay, 1.0))
                continue
            second = int(time.time() - self.start) + 1
            if self.tick_done.is_set():
                return
            events = self.recorder.take()
            if events:
                self.send(("events", events))


def _longrepr(report: Any) -> str:
    try:
        return str(report.longrepr)
    except Exception:  # noqa: BLE001 - a report that cannot format itself
        return repr(report.longrepr)


def load_main(
    session: pytest.Session,
    index: int,
    settings: Settings,
    start: float,
    res_fd: int,
    early: list[int] | None = None,
) -> int:
    """The forked child's body (``fork.worker.run_forked_child`` exits with its code);
    ``early``: the stop signals that came before it could listen (read once it listens, so
    none falls between the two handlers)."""
    try:
        process = LoadProcess(session, index, settings, start, res_fd)
        process.listen()
        if early:
            process._on_signal(signal.SIGTERM, None)
        return process.run()
    except BaseException:  # noqa: BLE001 - reported, then the process exits
        text = traceback.format_exc()
        sys.stderr.write(text)
        with contextlib.suppress(Exception):
            write_all(res_fd, pack(("fatal", text)))
        return 1
