"""The run pool: a FIFO queue of pytest runs, at most ``max_concurrent`` at a time.

Each run is one process (the run's pytest) leading its own process group, with its output in
a log file and its events on a pipe. The pool reports through a ``Sink``; its methods are
called from the pool's threads, per run always in the order ``run_started`` ->
``handle_events``* -> ``run_finished`` (``run_finished`` alone when the run never started).
``handle_events`` comes from the run's event-reader thread, which ends with an optional
``events_done`` in that same thread (a sink holding per-thread resources releases them there).
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import os
import select
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import logcap, procs, warm
from .records import (
    SEE_THE_LOG,
    USAGE_ERROR,
    RunOutcome,
    RunSpec,
    Sink,
    exit_meaning,
    spawn_message,
    usage_error_lines,
)

log = logging.getLogger(__name__)

__all__ = ["Pool", "RunOutcome", "RunSpec", "Sink", "exit_meaning"]


@dataclass
class _Run:
    spec: RunSpec
    proc: subprocess.Popen | warm.ZygoteProc | None = None
    reason: str | None = None
    terminating: bool = False
    exited: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop_reading: bool = False
    finished_session: bool = False
    collected: bool = False  # collection finished: from here on, tests' code may have run
    events_seen: int = 0


class Pool:
    def __init__(
        self,
        sink: Sink,
        max_concurrent: int = 1,
        batch_interval: float = 0.15,
        grace: float = 5.0,
        *,
        reap_orphans: bool = True,
        warm_start: bool = False,
        zygotes: warm.Zygotes | None = None,
        on_slot_free: Callable[[], None] | None = None,
    ) -> None:
        """``reap_orphans``: make this process a child subreaper (Linux) so processes a run
        leaves behind are adopted and reaped here instead of piling up as zombies under an
        init that does not reap (containers). It is process-wide: orphans of *other*
        subprocesses of this process are adopted too (and left to their fate).

        ``warm_start``: fork runs from a kept interpreter with pytest already imported
        (``runner.warm``), for a pool that lives longer than one run. ``zygotes``: those
        to use instead (a one-shot pool's, holding one started ahead of its run).

        ``on_slot_free``: called (from the pool's thread, outside its lock) each time a run
        has ended and its slot is free again, for whoever feeds the pool to submit more."""
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be >= 1")
        self.sink = sink
        self.max_concurrent = max_concurrent
        self.batch_interval = batch_interval
        self.grace = grace
        self._cond = threading.Condition()
        self._queue: collections.deque[RunSpec] = collections.deque()
        self._running: dict[int, _Run] = {}
        self._done: dict[int, threading.Event] = {}
        self._outcomes: dict[int, RunOutcome] = {}
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._on_slot_free = on_slot_free
        if zygotes is None and warm_start and warm.supported():
            zygotes = warm.Zygotes()
        self._zygotes = zygotes
        if reap_orphans:
            procs.become_subreaper()

    # -- public API ------------------------------------------------------------------------

    def submit(self, spec: RunSpec) -> None:
        with self._cond:
            if self._closed:
                raise RuntimeError("pool is shut down")
            if spec.run_id in self._done and not self._done[spec.run_id].is_set():
                raise ValueError(f"run {spec.run_id} is already queued or running")
            self._done[spec.run_id] = threading.Event()
            self._outcomes.pop(spec.run_id, None)
            self._queue.append(spec)
            self._start_more()

    def cancel(self, run_id: int) -> bool:
        with self._cond:
            spec = next((s for s in self._queue if s.run_id == run_id), None)
            if spec is not None:
                self._queue.remove(spec)
            run = self._running.get(run_id)
        if spec is not None:
            self._finish(RunOutcome(run_id, None, 0.0, "cancelled", "cancelled while queued"))
            return True
        if run is None:
            return False
        threading.Thread(
            target=self._terminate,
            args=(run, "cancelled"),
            name=f"ptd-cancel-{run_id}",
            daemon=True,
        ).start()
        return True

    def free_slots(self) -> int:
        with self._cond:
            return max(0, self.max_concurrent - len(self._running) - len(self._queue))

    def running(self) -> list[int]:
        with self._cond:
            return list(self._running)

    def queued(self) -> list[int]:
        with self._cond:
            return [s.run_id for s in self._queue]

    def wait(self, run_id: int, timeout: float | None = None) -> RunOutcome | None:
        with self._cond:
            done = self._done.get(run_id)
        if done is None or not done.wait(timeout):
            return None
        with self._cond:
            return self._outcomes.get(run_id)

    def shutdown(self, cancel_running: bool = True, timeout: float | None = None) -> None:
        """Stop accepting runs; drop the queue; end (or wait for) the running ones."""
        with self._cond:
            self._closed = True
            dropped = list(self._queue)
            self._queue.clear()
            running = list(self._running.values())
        for spec in dropped:
            self._finish(
                RunOutcome(spec.run_id, None, 0.0, "cancelled", "cancelled: the pool shut down")
            )
        if cancel_running:
            for run in running:
                threading.Thread(
                    target=self._terminate, args=(run, "cancelled"), daemon=True
                ).start()
        if self._zygotes is not None:
            self._zygotes.close()
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in list(self._threads):
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))

    # -- scheduling ------------------------------------------------------------------------

    def _start_more(self) -> None:
        """Start queued runs while slots are free. Caller holds ``self._cond``."""
        while self._queue and len(self._running) < self.max_concurrent:
            spec = self._queue.popleft()
            run = self._running[spec.run_id] = _Run(spec)
            thread = threading.Thread(
                target=self._supervise, args=(run,), name=f"ptd-run-{spec.run_id}", daemon=True
            )
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
            thread.start()

    def _finish(self, outcome: RunOutcome) -> None:
        self._call_sink("run_finished", outcome.run_id, outcome)
        with self._cond:
            self._outcomes[outcome.run_id] = outcome
            self._running.pop(outcome.run_id, None)
            done = self._done.setdefault(outcome.run_id, threading.Event())
            if not self._closed:
                self._start_more()
            self._cond.notify_all()
        done.set()
        if self._on_slot_free is not None:
            try:
                self._on_slot_free()
            except Exception:
                log.exception("on_slot_free failed after run %s", outcome.run_id)

    def _call_sink(self, method: str, *args: Any) -> None:
        try:
            getattr(self.sink, method)(*args)
        except Exception:  # a broken sink must never take the pool down
            log.exception("sink.%s failed for run %s", method, args[0])

    # -- one run ---------------------------------------------------------------------------

    def _supervise(self, run: _Run) -> None:
        spec = run.spec
        try:
            outcome = self._execute(run)
        except Exception as exc:  # pragma: no cover - defensive: never lose a run
            log.exception("run %s failed inside the pool", spec.run_id)
            outcome = RunOutcome(spec.run_id, None, 0.0, "crashed", f"internal error: {exc}")
        self._finish(outcome)

    def _execute(self, run: _Run) -> RunOutcome:
        spec = run.spec
        if spec.warm_first and self._zygotes is not None and run.reason is None:
            # Before anything of the run exists (its key leaves per-run variables out).
            self._zygotes.prepare(spec.argv, spec.cwd, spec.env)
        if run.reason is not None:  # cancelled while queued or preparing, or shutting down
            return RunOutcome(spec.run_id, None, 0.0, "cancelled", "cancelled before start")
        try:
            output = logcap.CappedLog(spec.log_path, spec.log_max_bytes)
        except OSError as exc:
            return RunOutcome(
                spec.run_id,
                None,
                0.0,
                "spawn_failed",
                f"cannot open the run's log file {spec.log_path}: {exc}",
            )
        r, w = os.pipe()
        tracker = procs.RunProcesses()
        env = {**spec.env, **tracker.env()}
        env["PTD_EVENTS_FD"] = str(w)
        # The run starts when the pool starts launching it: its wall time counts from here,
        # spawning included (a cold interpreter, or waiting for a zygote still preloading).
        started = time.monotonic()
        started_at = time.time()
        try:
            proc = None
            if self._zygotes is not None:
                proc = self._zygotes.spawn(
                    spec.argv, spec.cwd, env, output.write_fd, w, tracker.cgroup
                )
            if proc is not None:
                tracker.adopt(proc.cookie, proc.zygote_pid)
            proc = proc or subprocess.Popen(
                spec.argv,
                cwd=spec.cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=output.write_fd,
                stderr=subprocess.STDOUT,
                pass_fds=(w,),
                start_new_session=True,
                preexec_fn=tracker.child_setup,
            )
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            os.close(r)
            os.close(w)
            output.finish()
            tracker.close()
            return RunOutcome(spec.run_id, None, 0.0, "spawn_failed", spawn_message(spec, exc))
        finally:
            output.spawned()
            with contextlib.suppress(OSError):
                os.close(w)
        with run.lock:
            run.proc = proc
            cancelled_early = run.reason is not None
        reader = threading.Thread(
            target=self._read_events, args=(run, r), name=f"ptd-events-{spec.run_id}", daemon=True
        )
        reader.start()
        self._call_sink("run_started", spec.run_id, proc.pid, started_at)
        timer = None
        if spec.timeout:
            timer = threading.Timer(spec.timeout, self._terminate, (run, "timeout"))
            timer.daemon = True
            timer.start()
        if cancelled_early:  # cancel() came while the process was being started
            threading.Thread(target=self._terminate, args=(run, "cancelled"), daemon=True).start()
        # Exited but not reaped yet: until proc.wait() below, its pid (its group's id) cannot
        # be given to another process, so the sweep of its group reaches only the run's own.
        procs.wait_exited(proc)
        wall = time.monotonic() - started
        run.exited.set()
        if timer is not None:
            timer.cancel()
        # Whatever the run left behind (servers, sleeping children) goes with it, those that
        # left its process group too.
        procs.end_group(proc.pid, min(self.grace, 1.0), leader=proc.pid)
        tracker.end(min(self.grace, 1.0), leader=proc.pid)
        returncode = proc.wait()
        if self._zygotes is not None:
            self._zygotes.replenish(spec.argv, spec.cwd, env)
        reader.join(10.0)
        if reader.is_alive():
            log.warning("run %s: event pipe still open after exit; giving up on it", spec.run_id)
            run.stop_reading = True
            reader.join(2.0)
        log_bytes_cut = output.finish()
        with run.lock:
            reason = run.reason
        if reason == "timeout":
            message = f"timed out after {spec.timeout:g} s; the run's processes were ended"
        elif reason == "cancelled":
            message = "cancelled; the run's processes were ended"
        elif not run.finished_session:
            reason = "crashed"
            message = (
                f"pytest exited with code {returncode}{exit_meaning(returncode)} before finishing"
                f" the session\n{self._why(run, returncode)}"
            )
        elif returncode not in (0, 1, 5):  # a usage or internal error
            message = self._why(run, returncode)
        else:
            message = ""
        return RunOutcome(spec.run_id, returncode, wall, reason, message, log_bytes_cut)

    @staticmethod
    def _why(run: _Run, returncode: int | None) -> str:
        """What the public message says of a failed run: pytest's own words for a usage error
        that came before any test ran (a bad -k or option, for whoever launched it to fix),
        else where to look. Never the log's text: a test's output is staff's to read."""
        if returncode == USAGE_ERROR and not run.collected:
            lines = usage_error_lines(run.spec.log_path)
            if lines:
                return lines
        return SEE_THE_LOG

    def _terminate(self, run: _Run, reason: str) -> None:
        with run.lock:
            if run.exited.is_set():
                return
            if run.reason is None:
                run.reason = reason
            # Not spawned yet: _execute sees the reason right after Popen and comes back.
            if run.proc is None or run.terminating:
                return
            run.terminating = True
            pid = run.proc.pid
        grace = run.spec.grace if run.spec.grace is not None else self.grace
        procs.end_group(pid, grace, leader=pid)

    def _read_events(self, run: _Run, fd: int) -> None:
        """Parse JSON lines from the run; hand them to the sink in batches, in order."""
        buffer = b""
        batch: list[dict] = []
        last_flush = time.monotonic()
        try:
            while True:
                timeout = max(0.0, self.batch_interval - (time.monotonic() - last_flush))
                ready, _, _ = select.select([fd], [], [], timeout if batch else 0.5)
                if ready:
                    chunk = os.read(fd, 1 << 16)
                    if not chunk:
                        break
                    buffer += chunk
                    *lines, buffer = buffer.split(b"\n")
                    for line in lines:
                        event = _parse(line, run.spec.run_id)
                        if event is not None:
                            batch.append(event)
                elif run.stop_reading:
                    break
                if batch and time.monotonic() - last_flush >= self.batch_interval:
                    self._flush(run, batch)
                    batch = []
                    last_flush = time.monotonic()
        finally:
            os.close(fd)
            if buffer.strip():
                event = _parse(buffer, run.spec.run_id)
                if event is not None:
                    batch.append(event)
            if batch:
                self._flush(run, batch)
            if hasattr(self.sink, "events_done"):  # optional: the reader thread's own cleanup
                self._call_sink("events_done", run.spec.run_id)

    def _flush(self, run: _Run, batch: list[dict]) -> None:
        run.events_seen += len(batch)
        if any(e.get("type") == "session_finish" for e in batch):
            run.finished_session = True
        if any(e.get("type") == "collected" for e in batch):
            run.collected = True
        self._call_sink("handle_events", run.spec.run_id, batch)


def _parse(line: bytes, run_id: int) -> dict | None:
    line = line.strip()
    if not line:
        return None
    try:
        event = json.loads(line)
    except ValueError:
        log.warning("run %s: unparsable event line %r", run_id, line[:200])
        return None
    return event if isinstance(event, dict) and "type" in event else None
