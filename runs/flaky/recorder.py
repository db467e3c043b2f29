"""The history thread: folds finished runs into the flakiness summary off the request's path.

One instance per process, owned by its Environment (runs.execution.environment); tests build
their own. Whatever folds, folds a suite's waiting runs oldest first (``summary.catch_up``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor

from django.conf import settings
from django.db import connection

from runs.flaky.summary import catch_up
from runs.models import Run

log = logging.getLogger(__name__)


def record_run_safely(run: Run, tests=None) -> None:
    """Fold a finished run (its ``history_pending`` set), after its suite's older waiting runs.
    The summary is derived data: this never fails a run's finish (the run stays pending)."""
    try:
        catch_up(run.suite_id, None if tests is None else {run.id: tests})
    except Exception:
        log.exception("could not update the flakiness summary of run %s", run.id)


def catch_up_safely() -> None:
    try:
        catch_up()
    except Exception:
        log.exception("could not fold the finished runs waiting for the flakiness summary")


def _lowest_priority() -> None:
    """The history thread yields the CPU to everything else: its work is derived data, and on
    a machine the dashboard shares with test runs it must not slow them (Linux: a thread has a
    nice value of its own; elsewhere this would renice the whole server, so it is skipped)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


def _in_thread(fn, *args) -> None:
    try:
        fn(*args)
    finally:
        connection.close()  # this thread's own connection


class HistoryRecorder:
    def __init__(self) -> None:
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._catching_up: Future | None = None

    def _thread(self) -> ThreadPoolExecutor:
        with self._lock:  # started on first use: most processes never need it
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=1, thread_name_prefix="ptd-history", initializer=_lowest_priority
                )
            return self._executor

    def record_in_background(self, run: Run, tests=None) -> None:
        """Fold a finished run into the summary on the history thread.

        For ingestion's /finish: the CI job waits on that answer, and folding 10,000 tests costs
        it most of a second for derived data it does not need (if the server stops before this
        runs, the run stays ``history_pending`` and the next server's dispatcher folds it). Runs
        inline when ``PTD_BACKGROUND_HISTORY`` is off (tests inside a transaction)."""
        if settings.PTD_BACKGROUND_HISTORY:
            self._thread().submit(_in_thread, record_run_safely, run, tests)
        else:
            record_run_safely(run, tests)

    def catch_up_in_background(self) -> None:
        """Fold every run waiting for it (``run_suite``'s), on the history thread; once at a
        time (a call while one is queued or going adds nothing)."""
        if not settings.PTD_BACKGROUND_HISTORY:
            catch_up_safely()
            return
        with self._lock:
            going = self._catching_up
            if going is not None and not going.done():
                return
        future = self._thread().submit(_in_thread, catch_up_safely)
        with self._lock:
            self._catching_up = future

    def submit(self, fn, *args) -> Future:
        """Queue any callable on the history thread (tests hold the thread with it)."""
        return self._thread().submit(fn, *args)

    def wait(self, timeout: float) -> None:
        """Block until every run handed to the history thread so far is folded (bounded)."""
        self.submit(lambda: None).result(timeout)

    def shutdown(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)
