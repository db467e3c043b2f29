"""Pure metric functions over "test" events (the figures the README's introduction names).

``tests`` is always a sequence of the ``{"type": "test", ...}`` event dicts emitted by the
in-run plugin: one dict per attempt, with at least ``nodeid``, ``worker``, ``outcome`` and
``duration``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from _ptd_inrun.ids import base_nodeid, strip_group

__all__ = [
    "balance",
    "base_nodeid",
    "count_outcomes",
    "efficiency",
    "executed_tests",
    "flakiness_rate",
    "flaky_tests",
    "serial_seconds",
    "speedup",
    "strip_group",
    "summarize",
    "worker_stats",
]

PASSING = frozenset({"passed", "xpassed"})
FAILING = frozenset({"failed", "error", "rerun", "crashed"})
NOT_EXECUTED = frozenset({"skipped"})


def _duration(test: Mapping[str, Any]) -> float:
    return float(test.get("duration") or 0.0)


def serial_seconds(tests: Iterable[Mapping[str, Any]]) -> float:
    """Work: sum of setup + call + teardown durations of every executed attempt."""
    return sum(_duration(t) for t in tests)


def speedup(serial: float | None, wall: float | None) -> float | None:
    if serial is None or not wall or wall <= 0:
        return None
    return serial / wall


def efficiency(speedup_value: float | None, n: int | None) -> float | None:
    if speedup_value is None or not n or n <= 0:
        return None
    return speedup_value / n


def worker_stats(tests: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, float | int]]:
    """Per worker id: number of attempts run there and the seconds spent on them."""
    stats: dict[str, dict[str, float | int]] = {}
    for t in tests:
        worker = t.get("worker") or "gw0"
        s = stats.setdefault(worker, {"tests": 0, "busy_seconds": 0.0})
        s["tests"] += 1
        s["busy_seconds"] += _duration(t)
    return stats


def balance(busy_by_worker: Mapping[str, float] | Sequence[float]) -> float | None:
    """max(busy) / mean(busy); 1.0 is perfect. None when there is no busy time at all."""
    values = list(
        busy_by_worker.values() if isinstance(busy_by_worker, Mapping) else busy_by_worker
    )
    if not values:
        return None
    total = sum(values)
    if total <= 0:
        return None
    return max(values) / (total / len(values))


def flaky_tests(tests: Iterable[Mapping[str, Any]]) -> set[str]:
    """Base node ids with both a passing and a failing attempt in the run."""
    passing: set[str] = set()
    failing: set[str] = set()
    tests = list(tests)
    superseded = _crashes_run_again(tests)
    for t in tests:
        outcome = t.get("outcome")
        if outcome in PASSING:
            passing.add(base_nodeid(t["nodeid"]))
        elif outcome in FAILING and not (outcome == "crashed" and t["nodeid"] in superseded):
            failing.add(base_nodeid(t["nodeid"]))
    return passing & failing


def _crashes_run_again(tests: list[Mapping[str, Any]]) -> set[str]:
    """Node ids with a crashed attempt *and* a later attempt that ended (a lost machine's test,
    run again on another in a run over several machines: runs.execution.fleet_queue). The
    crash is superseded, as a ``rerun`` attempt is: counted neither as a failure nor as
    flakiness (the machine was lost, not the test's doing). Elsewhere a crash is final."""
    crashed = {t.get("nodeid") for t in tests if t.get("outcome") == "crashed"} - {None}
    if not crashed:
        return set()
    ended = {t.get("nodeid") for t in tests if t.get("outcome") not in ("crashed", "rerun")}
    return crashed & ended


def executed_tests(tests: Iterable[Mapping[str, Any]]) -> set[str]:
    """Distinct base node ids with at least one attempt that was not a plain skip."""
    return {base_nodeid(t["nodeid"]) for t in tests if t.get("outcome") not in NOT_EXECUTED}


def flakiness_rate(tests: Sequence[Mapping[str, Any]]) -> float | None:
    executed = executed_tests(tests)
    if not executed:
        return None
    return len(flaky_tests(tests)) / len(executed)


def count_outcomes(tests: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Final attempts only (``rerun`` attempts are superseded by a later attempt)."""
    counts = {"total": 0, "passed": 0, "failed": 0, "skipped": 0, "errors": 0}
    tests = list(tests)
    ran_again = _crashes_run_again(tests)
    for t in tests:
        outcome = t.get("outcome")
        if outcome == "rerun" or (outcome == "crashed" and t.get("nodeid") in ran_again):
            continue
        counts["total"] += 1
        if outcome in PASSING:
            counts["passed"] += 1
        elif outcome in ("failed", "crashed"):
            counts["failed"] += 1
        elif outcome in ("skipped", "xfailed"):
            counts["skipped"] += 1
        elif outcome == "error":
            counts["errors"] += 1
    return counts


def summarize(
    tests: Sequence[Mapping[str, Any]], wall: float | None, workers: int
) -> dict[str, Any]:
    """Every figure of a run's summary except ``speedup_measured`` (needs history)."""
    tests = list(tests)
    serial = serial_seconds(tests)
    sp = speedup(serial, wall) if tests else None  # no test ran: nothing was sped up
    stats = worker_stats(tests)
    busy = {w: float(s["busy_seconds"]) for w, s in stats.items()}
    # Workers that never got a test still count as idle capacity.
    padded = list(busy.values()) + [0.0] * max(0, workers - len(busy))
    counts = count_outcomes(tests)
    counts["flaky"] = len(flaky_tests(tests))
    return {
        "wall_seconds": wall,
        "serial_seconds": serial,
        "speedup": sp,
        "efficiency": efficiency(sp, workers),
        "balance": balance(padded),
        "flakiness_rate": flakiness_rate(tests),
        "tests": counts,
        "per_worker": [
            {"id": w, "tests": int(stats[w]["tests"]), "busy_seconds": busy[w]}
            for w in sorted(stats, key=_worker_sort_key)
        ],
    }


def _worker_sort_key(worker: str) -> tuple[int, str]:
    digits = worker[2:] if worker.startswith("gw") else ""
    return (int(digits), worker) if digits.isdigit() else (1 << 30, worker)
