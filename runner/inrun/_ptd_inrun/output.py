"""What a test printed: its captured stdout, stderr and log records, cut to the run's caps.

pytest puts them in each phase's report as ``sections`` (``("Captured stdout call", text)``,
``("Captured log setup", text)``, ...); a later phase's report repeats the sections of the
earlier ones (``item._report_sections`` accumulates), so an attempt keeps each title once.

The caps are applied here, in the run's controlling process, so that a test printing a
gigabyte never crosses the event pipe: each stream of one attempt keeps at most
``PTD_MAX_OUTPUT_PER_TEST`` bytes (its head and its tail) and the run at most
``PTD_MAX_OUTPUT_PER_RUN`` bytes in all. Only failing attempts keep their output, unless
``PTD_CAPTURE_PASSED`` is set (the run configuration's ``capture_passed``, like ``-rP``).
The dashboard sets these variables for its runs; an ingested run reads the CI job's.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from typing import Any

STREAMS = ("stdout", "stderr", "log")
PER_TEST_DEFAULT = 16 * 1024
PER_RUN_DEFAULT = 4 * 1024 * 1024
FAILING = ("failed", "error", "rerun", "crashed")  # attempts whose output is kept always
# Terminal control sequences (colours, cursor moves, OSC titles/links): a test printing with
# colour (loggers, rich, pytest's own --color=yes) shows as text on the page and in JUnit.
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")


def _env_int(name: str, default: int) -> int:
    try:
        return max(0, int(os.environ.get(name, "") or default))
    except ValueError:
        return default


def cut(text: str, limit: int) -> str:
    """``text`` in at most about ``limit`` UTF-8 bytes: its head and tail, and what was cut."""
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return text
    if limit <= 0:
        return f"[… {len(data)} bytes cut]\n"
    half = limit // 2
    head = data[:half].decode("utf-8", "ignore")
    tail = data[len(data) - (limit - half) :].decode("utf-8", "ignore")
    return f"{head}\n[… {len(data) - limit} bytes cut]\n{tail}"


def storable(text: str) -> str:
    """Text every database takes (no NUL: PostgreSQL refuses it; no lone surrogates) and
    every page shows (no terminal control sequences)."""
    if "\x1b" in text:
        text = _ANSI.sub("", text)
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


# Control characters but tab and newline: a carriage return or a lone ESC left by storable()
# could still overwrite what a terminal shows.
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``storable(text)`` with every other control character but tab and newline shown as
    U+FFFD: text a terminal or a page shows as it is, never as a command to the terminal."""
    return _CONTROLS.sub("\ufffd", storable(text).replace("\r\n", "\n"))


def streams_of(sections: Iterable[tuple[str, str]]) -> dict[str, str]:
    """``{"stdout": ..., "stderr": ..., "log": ...}`` from a report's sections (only those
    with text). A stream captured in several phases says which phase printed what."""
    by_stream: dict[str, list[tuple[str, str]]] = {}
    seen = set()
    for title, content in sections:
        parts = str(title).split()
        if len(parts) != 3 or parts[0] != "Captured" or parts[1] not in STREAMS:
            continue
        if title in seen or not content:
            continue
        seen.add(title)
        by_stream.setdefault(parts[1], []).append((parts[2], storable(str(content))))
    out = {}
    for stream, pieces in by_stream.items():
        if len(pieces) == 1 and pieces[0][0] == "call":
            out[stream] = pieces[0][1]
        else:
            out[stream] = "".join(f"--- {when} ---\n{text}" for when, text in pieces)
    return out


CAP_REACHED = "[the run's output cap (PTD_MAX_OUTPUT_PER_RUN) is reached]\n"


class OutputBudget:
    """The caps of one run: what each attempt may keep, and what the run has left."""

    def __init__(
        self,
        per_test: int | None = None,
        per_run: int | None = None,
        capture_passed: bool | None = None,
    ) -> None:
        if per_test is None:
            per_test = _env_int("PTD_MAX_OUTPUT_PER_TEST", PER_TEST_DEFAULT)
        if per_run is None:
            per_run = _env_int("PTD_MAX_OUTPUT_PER_RUN", PER_RUN_DEFAULT)
        self.per_test, self.per_run = per_test, per_run
        if capture_passed is None:
            capture_passed = os.environ.get("PTD_CAPTURE_PASSED", "") not in ("", "0", "false")
        self.capture_passed = capture_passed
        self.left = self.per_run

    def keep(self, outcome: str | None, sections: Iterable[tuple[str, str]]) -> dict[str, str]:
        """The streams an attempt keeps (each cut to the caps); {} for a passing attempt
        unless passing output is asked for."""
        if not self.capture_passed and outcome not in FAILING:
            return {}
        out = {}
        streams = streams_of(sections)
        if self.left <= 0:  # spent: one short line per attempt, not a notice per stream
            for stream, text in streams.items():
                if text:
                    return {stream: CAP_REACHED}
            return {}
        for stream, text in streams.items():
            size = len(text.encode("utf-8", "replace"))
            limit = min(self.per_test, self.left)
            kept = cut(text, limit)
            if limit < self.per_test and size > limit:
                kept += CAP_REACHED
            self.left = max(0, self.left - min(size, limit))
            out[stream] = kept
        return out


def sections_of(report: Any) -> list[tuple[str, str]]:
    return list(getattr(report, "sections", None) or [])
