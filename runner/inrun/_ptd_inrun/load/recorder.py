"""What one load process measured since its last tick: the deltas its ``load_tick`` and
``load_error`` events carry.

User threads call ``test`` / ``request`` (under one lock: a dict update and a histogram bucket,
about a microsecond); the ticker thread calls ``take`` once a second, which swaps the
accumulators for empty ones and turns them into events. Memory is bounded whatever the load:
per name an ``Entry`` (at most ~90 buckets per decade of latency), per error group a count and
its first example, and the number of names is capped (``MAX_NAMES``) so a suite that calls
ever-new URLs cannot grow it without end.
"""

from __future__ import annotations

import re
import threading
import time
from typing import Any

from .histogram import Entry

TRACEBACK_LIMIT = 8 * 1024
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")  # "<Connection object at 0x7f..>": one group
MAX_NAMES = 1000  # distinct endpoints (or error groups) per process; the rest share one name
OTHER = "(other)"


def error_key(exc_type: str, message: str) -> str:
    """``"ExcType: first line of the message"``: how errors are grouped."""
    first = (message or "").strip().splitlines()[0] if (message or "").strip() else ""
    text = f"{exc_type}: {_ADDRESS.sub('', first)}" if first else exc_type
    return text[:300]


def cap_traceback(text: str) -> str:
    if len(text) <= TRACEBACK_LIMIT:
        return text
    return text[: TRACEBACK_LIMIT - 15] + "\n...[truncated]"


class _Error:
    __slots__ = ("count", "traceback")

    def __init__(self, traceback: str) -> None:
        self.count = 0
        self.traceback = traceback


class Recorder:
    def __init__(self, process: str, start: float) -> None:
        self.process = process
        self.start = start  # wall time of load_start: ticks count whole seconds from it
        self.lock = threading.Lock()
        self.tests: dict[str, Entry] = {}
        self.requests: dict[str, Entry] = {}
        self.errors: dict[tuple[str, str, str], _Error] = {}
        self.examples: dict[tuple[str, str, str], str] = {}  # first traceback, kept for good
        self.users = 0
        self._sent_users = 0
        self._last_second = -1

    # -- user threads ----------------------------------------------------------------------

    def test(self, nodeid: str, ms: float, kind: str | None, error: str = "", tb: str = "") -> None:
        """One iteration of a test: ``kind`` None (passed), "failure" or "exception"."""
        with self.lock:
            entry = self.tests.get(nodeid)
            if entry is None:
                entry = self.tests[nodeid] = Entry()
            entry.add(ms, failed=kind == "failure", exception=kind == "exception")
            if kind is not None:
                self._error(nodeid, kind, error, tb)

    def request(self, key: str, ms: float, kind: str | None, error: str = "", tb: str = "") -> None:
        """One HTTP request: ``kind`` None, "failure" (status >= 400) or "exception"."""
        with self.lock:
            entry = self.requests.get(key)
            if entry is None:
                if len(self.requests) >= MAX_NAMES:
                    key = f"{key.split(' ', 1)[0]} {OTHER}"
                entry = self.requests.get(key)
                if entry is None:
                    entry = self.requests[key] = Entry()
            entry.add(ms, failed=kind == "failure", exception=kind == "exception")
            if kind is not None:
                self._error(key, kind, error, tb)

    def _error(self, name: str, kind: str, error: str, tb: str) -> None:
        key = (name, kind, error)
        group = self.errors.get(key)
        if group is None:
            example = self.examples.get(key)
            if example is None:
                if len(self.examples) >= MAX_NAMES:
                    key = (name, kind, OTHER)
                    example = self.examples.setdefault(key, "")
                else:
                    example = self.examples[key] = cap_traceback(tb or error)
            group = self.errors.get(key)
            if group is None:
                group = self.errors[key] = _Error(example)
        group.count += 1

    def set_users(self, users: int) -> None:
        with self.lock:
            self.users = users

    # -- the ticker ------------------------------------------------------------------------

    def take(self, now: float | None = None, final: bool = False) -> list[dict[str, Any]]:
        """The events for what happened since the last call. A tick every second while the
        process has users, even when none of them finished anything (the dashboard sums each
        second's users over the processes' ticks: a process silent for a second counted as
        none of its users there, and a second no process spoke of was missing from the
        series); nothing once it has none and has said so.

        ``second`` is whole seconds since load_start, never the same twice in one process
        (a final flush in the second of the last tick is dated the next second)."""
        now = time.time() if now is None else now
        with self.lock:
            tests, self.tests = self.tests, {}
            requests, self.requests = self.requests, {}
            errors, self.errors = self.errors, {}
            users = self.users
        if not tests and not requests and not errors and users == self._sent_users == 0:
            return []
        second = max(int(now - self.start), 0)
        if second <= self._last_second:
            if not final:  # the ticker woke early: keep it for the next second
                self._merge_back(tests, requests, errors)
                return []
            second = self._last_second + 1
        self._last_second = second
        self._sent_users = users
        events: list[dict[str, Any]] = [
            {
                "type": "load_tick",
                "time": now,
                "process": self.process,
                "second": second,
                "users": users,
                "tests": {name: entry.to_dict() for name, entry in tests.items()},
                "requests": {name: entry.to_dict() for name, entry in requests.items()},
            }
        ]
        for (name, kind, error), group in errors.items():
            events.append(
                {
                    "type": "load_error",
                    "time": now,
                    "process": self.process,
                    "name": name,
                    "kind": kind,
                    "error": error,
                    "traceback": group.traceback,
                    "count": group.count,
                }
            )
        return events

    def _merge_back(self, tests: dict, requests: dict, errors: dict) -> None:
        with self.lock:
            for mine, old in ((self.tests, tests), (self.requests, requests)):
                for name, entry in old.items():
                    if name in mine:
                        entry.merge(mine[name])
                    mine[name] = entry
            for key, group in errors.items():
                newer = self.errors.get(key)
                if newer is not None:
                    group.count += newer.count
                self.errors[key] = group
