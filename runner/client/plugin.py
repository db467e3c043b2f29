"""Send a pytest run made elsewhere (a CI machine) to a PTD dashboard, live.

A pytest plugin, registered as the ``ptd`` pytest11 entry point (or ``-p runner.client.plugin``):

    PTD_TOKEN=ptd_... pytest -n 4 --ptd-url https://ptd.example --ptd-suite NAME

It is inert unless ``--ptd-url`` is given: it is auto-loaded in every pytest run where PTD is
installed, so it only adds its options and imports nothing else. When active (controlling
process only; xdist workers never talk to the dashboard) it reuses the in-run plugin's Reporter,
so the events are exactly those PTD's own runs produce, and a background thread posts them in
batches to ``/api/ingest/runs/{id}/events``, then closes the run with the session's outcome.

The dashboard being down never fails or slows the run: the plugin warns once, appends the
events to a local spool file (JSON lines, mode 0600, in a new private directory unless
``--ptd-spool`` names one) and tries once more at the end; if that fails too, the spool is
kept and ``ptd upload FILE`` sends it later. Plain Python + requests, no Django.

The token leaves the machine only in the Authorization header: the uploaded command line
and the spool file never hold it (``--ptd-token`` and its value are stripped).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from .http import Rejected, Unreachable, preload
from .ingestion import (
    BATCH_MAX,
    TOKEN_OPTION,
    Connection,
    ci_metadata,
    new_spool_path,
    open_spool,
    strip_token,
    upload_spool,
)

PLUGIN_NAME = "ptd-ingest"
FLUSH_SECONDS = 1.0
CLOSE_BUDGET = 60.0  # at most this long at the end of the session (flush, retry, finish)
_STOP = object()


class Sender:
    """The writer the Reporter emits into: queues events, a thread posts them in batches."""

    def __init__(self, url: str, token: str, header: dict, spool_path: Path | None, started: float):
        self.url = url.rstrip("/")
        self.token = token
        self.conn: Connection | None = None  # made in the thread (its first request may wait)
        self.header = header
        self.spool_path = spool_path  # None: a new private one, made if the dashboard is down
        self._own_spool_dir = spool_path is None
        self.started = started
        self.run_id: int | None = None
        self.run_url = ""
        self.final_status = ""
        self.exitstatus: int | None = None
        self.finished_at: float | None = None
        self.notices: queue.SimpleQueue[str] = queue.SimpleQueue()
        self.disabled = False  # refused by the dashboard: drop everything
        self.spooling = False  # unreachable: events go to the spool file
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._seq = 0  # the number of the next batch's first event (the server dedupes by it)
        self._closing = threading.Event()
        self._closed = False
        self._spool = None
        preload()  # here, not in the thread: its loggers must not appear while pytest reads them
        self._thread = threading.Thread(target=self._run, name="ptd-ingest", daemon=True)
        self._thread.start()

    # The EventWriter interface the Reporter uses.
    def emit(self, event: dict) -> None:
        if event.get("type") == "session_finish":
            self.exitstatus = int(event.get("exitstatus", 1))
            self.finished_at = time.time()
        if not self._closed:
            self._queue.put(event)

    def close(self, timeout: float = CLOSE_BUDGET) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        self._closing.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            self.notices.put(f"gave up waiting for {self.url} after {timeout:.0f} s")

    # The thread.
    def _run(self) -> None:
        try:
            self.conn = Connection(self.url, self.token)
            self._start_run()
            stop = False
            while not stop:
                batch, stop = self._collect()
                if batch:
                    self._deliver(batch)
            self._finish()
        except Exception as exc:  # never let the plugin break the user's run
            self.notices.put(f"ingestion stopped: {type(exc).__name__}: {exc}")
        finally:
            if self._spool is not None:
                self._spool.close()

    def _collect(self) -> tuple[list[dict], bool]:
        """Up to BATCH_MAX events: those queued within FLUSH_SECONDS of the first one.

        The thread sleeps while the batch builds up rather than waking for each event: a
        wake-up per test is a GIL hand-off the run's main thread pays for, thousands of times.
        No sleep when a full batch is already waiting (a backlog after a slow answer). One
        batch is one POST, so a batch is sent or spooled whole, never both in part.
        """
        first = self._queue.get()
        if first is _STOP:
            return [], True
        if self._queue.qsize() < BATCH_MAX - 1:
            self._closing.wait(FLUSH_SECONDS)
        batch = [first]
        while len(batch) < BATCH_MAX:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                return batch, True
            batch.append(item)
        return batch, False

    def _start_run(self) -> None:
        try:
            self.run_id = self.conn.create_run(self.header)
            self.run_url = f"{self.url}/runs/{self.run_id}/"
        except Rejected as exc:
            self.disabled = True
            self.notices.put(f"the dashboard refused the run, not sending it: {exc}")
        except Unreachable as exc:
            self._go_offline(exc)

    def _go_offline(self, exc: Exception, seq: int = 0) -> None:
        """From now on events go to the spool; the first one spooled is number ``seq``."""
        self.spooling = True
        if self.spool_path is None:
            self.spool_path = new_spool_path()
        self.notices.put(
            f"dashboard unreachable at {self.url} ({exc}); spooling results to "
            f"{self.spool_path} and retrying at the end"
        )
        self._spool = open_spool(self.spool_path)
        self._spool.write(json.dumps({"type": "ptd_spool", **self.header}) + "\n")
        if self.run_id is not None:
            self._spool.write(json.dumps({"type": "ptd_run", "id": self.run_id}) + "\n")
            self._spool.write(json.dumps({"type": "ptd_seq", "seq": seq}) + "\n")

    def _deliver(self, batch: list[dict]) -> None:
        if self.disabled:
            return
        seq, self._seq = self._seq, self._seq + len(batch)
        if not self.spooling:
            try:
                self.conn.send(self.run_id, batch, seq)
                return
            except Rejected as exc:
                self.disabled = True
                self.notices.put(f"the dashboard refused events, not sending more: {exc}")
                return
            except Unreachable as exc:  # perhaps stored, its answer lost: numbered, so safe
                self._go_offline(exc, seq)
        self._spool.write("".join(json.dumps(e, default=str) + "\n" for e in batch))
        self._spool.flush()

    def _finish(self) -> None:
        exitstatus = 1 if self.exitstatus is None else self.exitstatus
        wall = (self.finished_at or time.time()) - self.started
        if self.disabled:
            return
        if self.spooling:
            self._spool.write(
                json.dumps({"type": "ptd_finish", "exitstatus": exitstatus, "wall_seconds": wall})
                + "\n"
            )
            self._spool.close()
            self._spool = None
            try:
                run = upload_spool(self.spool_path, self.conn)
            except (Unreachable, Rejected) as exc:
                self.notices.put(
                    f"still cannot send the run ({exc}); results kept in {self.spool_path}: "
                    f"send them later with `ptd upload {self.spool_path}`"
                )
                return
            self.spool_path.unlink(missing_ok=True)
            if self._own_spool_dir:
                with contextlib.suppress(OSError):
                    self.spool_path.parent.rmdir()
        else:
            try:
                run = self.conn.finish(self.run_id, exitstatus, wall)
            except (Unreachable, Rejected) as exc:
                self.notices.put(f"could not close run {self.run_id}: {exc}")
                return
        self.run_url = f"{self.url}{run['url']}"
        self.final_status = run["status"]


# The pytest plugin ------------------------------------------------------------------------------


def pytest_addoption(parser: Any) -> None:
    group = parser.getgroup("ptd", "send this run to a Parallel Test Dashboard")
    group.addoption("--ptd-url", default=None, help="dashboard URL; without it, nothing is sent")
    group.addoption(
        TOKEN_OPTION, default=None, help="API token (better: env PTD_TOKEN, kept out of logs)"
    )
    group.addoption("--ptd-suite", default=None, help="name of the suite on the dashboard")
    group.addoption("--ptd-commit", default=None, help="commit (default: CI's env, else git)")
    group.addoption("--ptd-branch", default=None, help="branch (default: CI's env, else git)")
    group.addoption("--ptd-ci-url", default=None, help="link to the CI job")
    group.addoption(
        "--ptd-spool",
        default=None,
        help="spool file used while the dashboard is unreachable (default: a new private one)",
    )


class IngestPlugin:
    """Shows the sender's notices (from the main thread) and the run's link at the end."""

    def __init__(self, sender: Sender, config: Any):
        self.sender = sender
        self.config = config

    def _flush_notices(self) -> None:
        terminal = self.config.pluginmanager.get_plugin("terminalreporter")
        while True:
            try:
                message = self.sender.notices.get_nowait()
            except queue.Empty:
                return
            _warn(terminal, message)

    def pytest_runtest_logreport(self, report: Any) -> None:
        if not self.sender.notices.empty():
            self._flush_notices()

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        self.sender.close()  # normally closed already by the Reporter at session finish
        self._flush_notices()
        if self.sender.final_status:
            terminalreporter.write_line(
                f"ptd: run {self.sender.final_status}: {self.sender.run_url}"
            )

    def pytest_unconfigure(self, config: Any) -> None:
        self.sender.close()


def _warn(terminal: Any, message: str) -> None:
    if terminal is not None:
        terminal.write_line(f"ptd: warning: {message}", yellow=True)
    else:
        print(f"ptd: warning: {message}", file=sys.__stderr__, flush=True)


def pytest_configure(config: Any) -> None:
    url = config.getoption("ptd_url", None)
    if not url or hasattr(config, "workerinput"):
        return  # inert: no --ptd-url, or an xdist worker (the controller sends everything)
    terminal = config.pluginmanager.get_plugin("terminalreporter")
    token = config.getoption("ptd_token") or os.environ.get("PTD_TOKEN", "")
    suite = config.getoption("ptd_suite") or os.environ.get("PTD_SUITE", "")
    missing = [
        name for name, value in (("--ptd-token", token), ("--ptd-suite", suite)) if not value
    ]
    if missing or not url.startswith(("http://", "https://")):
        problem = f"{' and '.join(missing)} missing" if missing else f"bad --ptd-url {url!r}"
        _warn(terminal, f"not sending this run to the dashboard: {problem}")
        return
    from _ptd_inrun.reporter import Reporter

    meta = ci_metadata(git_dir=config.rootpath)  # off CI: the checkout's commit and branch
    for key, option in (
        ("commit", "ptd_commit"),
        ("branch", "ptd_branch"),
        ("ci_url", "ptd_ci_url"),
    ):
        if config.getoption(option):
            meta[key] = config.getoption(option)
    workers = getattr(config.option, "numprocesses", None)
    started = time.time()
    header = {
        "suite": suite,
        **meta,
        "host": socket.gethostname()[:200],
        "args": [a[:1000] for a in strip_token(config.invocation_params.args, token)][:200],
        "workers": workers if isinstance(workers, int) and workers > 0 else None,
        "started": started,
    }
    spool = config.getoption("ptd_spool")
    sender = Sender(url, token, header, Path(spool) if spool else None, started=started)
    config.pluginmanager.register(Reporter(config, sender), PLUGIN_NAME + "-reporter")
    config.pluginmanager.register(IngestPlugin(sender, config), PLUGIN_NAME)
