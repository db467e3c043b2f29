"""A run as the pool sees it: a RunSpec in, a RunOutcome out, the Sink the pool reports to;
the statuses of a run not yet over; and the words for how a run ended (``exit_meaning``,
``spawn_message``, ``usage_error_lines``, ``SEE_THE_LOG``).

A run's message is shown to every member, its log only to staff: the message never carries
the log's text (a test's output, secrets it printed), only pytest's own words for a usage
error that stopped it before any test ran."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Protocol

LOG_TAIL_LINES = 30
USAGE_ERROR = 4  # pytest's ExitCode.USAGE_ERROR
SEE_THE_LOG = "The run's log has the details."
# pytest's own lines for a usage error: "ERROR: ..." and its argument parser's "pytest: error:"
# (or "python -m pytest: error:", after the program's name).
_USAGE_LINE = re.compile(r"(ERROR: |(python -m )?[\w.-]+: error: )")
_USAGE_LINES_KEPT, _USAGE_LINE_CHARS = 5, 500
# A run's status while it is not over (the API's "status"); any other status is final.
ACTIVE_STATUSES = ("queued", "running")


@dataclass
class RunSpec:
    run_id: int
    argv: list[str]
    cwd: str
    env: dict[str, str]
    timeout: float | None
    log_path: str  # stdout + stderr of the run's pytest
    log_max_bytes: int | None = None  # kept: its head and tail halves (None: all of it)
    # Seconds between SIGTERM and SIGKILL when the run is cancelled or times out (None: the
    # pool's). A load run asks for more than its engine's stop grace (LOAD_GRACE), so running
    # iterations finish and its last statistics are sent.
    grace: float | None = None
    # Wait, before the run starts (its wall), for a warm interpreter when warm starts are on:
    # a sweep's steps must all start warm, or the first (often the 1-worker baseline) is slower
    # by a cold start and every measured speedup is inflated.
    warm_first: bool = False


LOAD_GRACE = 15.0  # a load run's RunSpec.grace: the load engine's 10 s stop grace, and margin


@dataclass
class RunOutcome:
    run_id: int
    returncode: int | None
    wall_seconds: float
    # None, "timeout", "cancelled", "spawn_failed" or "crashed" (no session_finish seen)
    reason: str | None
    message: str = ""
    log_bytes_cut: int = 0  # output left out of the log's middle (RunSpec.log_max_bytes)


class Sink(Protocol):
    def run_started(self, run_id: int, pid: int, started_at: float) -> None: ...

    def handle_events(self, run_id: int, events: list[dict]) -> None: ...

    def run_finished(self, run_id: int, outcome: RunOutcome) -> None: ...


def spawn_message(spec: RunSpec, exc: BaseException) -> str:
    if not os.path.isdir(spec.cwd):
        return f"cannot start the run: directory {spec.cwd} does not exist"
    program = spec.argv[0] if spec.argv else "<empty argv>"
    if isinstance(exc, FileNotFoundError):
        return f"cannot start the run: {program} not found"
    if isinstance(exc, PermissionError):
        return f"cannot start the run: {program} is not executable"
    return f"cannot start the run ({program}): {exc}"


# pytest's ExitCode values other than 0, 1 and 5 (no tests collected, said on its own).
EXIT_MEANINGS = {2: "interrupted", 3: "internal error", 4: "usage error"}


def exit_meaning(code: int | None) -> str:
    """' (usage error)' for pytest's exit code 4, and so on; '' for others."""
    meaning = EXIT_MEANINGS.get(code) if code is not None else None
    return f" ({meaning})" if meaning else ""


def usage_error_lines(path: str) -> str:
    """pytest's own ``ERROR:`` lines at the end of a run's log, for a usage error (exit code 4)
    that stopped the run before any test ran; the rest of the log stays in the log."""
    kept = [line for line in _log_tail(path).splitlines() if _USAGE_LINE.match(line)]
    return "\n".join(line[:_USAGE_LINE_CHARS] for line in kept[-_USAGE_LINES_KEPT:])


def _log_tail(path: str, lines: int = LOG_TAIL_LINES, max_bytes: int = 16384) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            data = fh.read()
    except OSError:
        return ""
    text = data.decode("utf-8", "replace").rstrip()
    return "\n".join(text.splitlines()[-lines:])
