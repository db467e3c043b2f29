"""Two runs compared, test by test: pure functions over result rows (no database).

A row is ``(nodeid, worker, outcome, duration)``: one attempt, as TestResult stores it. A test
is its node id without pytest-repeat's ``[i-N]`` suffix, so repeats fold into one test. Each
test of a run gets one state:

- ``flaky``: it has both a passing and a failing attempt (reruns or repeats; DESIGN 3);
- ``failed``: it has failing attempts (failed, error, crashed, rerun) and no passing one;
- ``passed``: it has a passing attempt (passed, xpassed) and no failing one;
- ``skipped``: every attempt was skipped or xfailed.

Groups of tests in both runs (run A is the baseline, B the one compared with it) are disjoint:
new failures (failed in B, not in A), fixed (failed in A, passed in B), still failing (failed in
both), newly flaky (flaky in B, not in A). Tests in one run only are added or removed, whatever
their state (the entry says it). Slower and faster are tests that ran (were not skipped) in both
whose mean attempt duration moved by at least NOISE_SECONDS *and* NOISE_RATIO of A's: below
that, timing noise of a shared machine, not a change.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from runner.metrics import FAILING, PASSING, base_nodeid

# The noise floor of "slower" / "faster": both must hold (README: Comparing runs).
NOISE_SECONDS = 0.1
NOISE_RATIO = 0.2

COLLECT_WORKER = "-"  # a collection error belongs to no worker (runs.execution.sink)

GROUPS = ("new_failures", "fixed", "still_failing", "new_flaky", "added", "removed")


@dataclass(slots=True)
class TestState:
    """One test's attempts in one run, folded."""

    __test__ = False  # not a pytest test class

    attempts: int = 0
    seconds: float = 0.0
    passing: bool = False
    failing: bool = False

    @property
    def state(self) -> str:
        if self.passing and self.failing:
            return "flaky"
        if self.failing:
            return "failed"
        return "passed" if self.passing else "skipped"

    @property
    def duration(self) -> float:
        """Mean seconds per attempt (runs with different repeat counts stay comparable)."""
        return self.seconds / self.attempts if self.attempts else 0.0


def fold(rows: Iterable[tuple]) -> dict[str, TestState]:
    """Each test's state in a run from its attempts' rows."""
    tests: dict[str, TestState] = {}
    for nodeid, _worker, outcome, duration in rows:
        key = base_nodeid(nodeid)
        test = tests.get(key)
        if test is None:
            test = tests[key] = TestState()
        test.attempts += 1
        test.seconds += duration or 0.0
        if outcome in PASSING:
            test.passing = True
        elif outcome in FAILING:
            test.failing = True
    return tests


def workers(rows: Iterable[tuple]) -> dict:
    """Per-worker attempts and busy seconds, and balance (max / mean busy), from the rows:
    the same figures as the run's WorkerStat rows, without another query."""
    per: dict[str, list] = {}
    for _nodeid, worker, _outcome, duration in rows:
        if worker == COLLECT_WORKER:
            continue
        figures = per.setdefault(worker, [0, 0.0])
        figures[0] += 1
        figures[1] += duration or 0.0
    busy = [seconds for _tests, seconds in per.values()]
    mean = sum(busy) / len(busy) if busy else 0.0
    return {
        "balance": round(max(busy) / mean, 4) if mean > 0 else None,
        "per_worker": [
            {"id": w, "tests": n, "busy_seconds": round(s, 6)} for w, (n, s) in sorted(per.items())
        ],
    }


def entry(nodeid: str, a: TestState | None, b: TestState | None) -> dict:
    da = round(a.duration, 6) if a else None
    db = round(b.duration, 6) if b else None
    delta = round(db - da, 6) if a and b else None
    return {
        "nodeid": nodeid,
        "outcome_a": a.state if a else None,
        "outcome_b": b.state if b else None,
        "duration_a": da,
        "duration_b": db,
        "delta": delta,
        "ratio": round(db / da, 4) if a and b and da > 0 else None,
    }


def group_of(a: str, b: str) -> str | None:
    """The group of a test in both runs from its states in A and B (None: nothing changed
    worth a list, e.g. passed in both)."""
    if b == "failed":
        return "still_failing" if a == "failed" else "new_failures"
    if b == "flaky":
        return None if a == "flaky" else "new_flaky"
    if a == "failed" and b == "passed":
        return "fixed"
    return None


def noticeable(a: float, b: float) -> bool:
    """A duration change above the noise floor (NOISE_SECONDS and NOISE_RATIO of A's)."""
    delta = abs(b - a) + 1e-9  # 1.2 - 1.0 is 0.19999999999999996 in floating point
    return delta >= NOISE_SECONDS and (a <= 0 or delta / a >= NOISE_RATIO)


def compare_tests(rows_a: Iterable[tuple], rows_b: Iterable[tuple]) -> dict[str, list[dict]]:
    """The groups (GROUPS, then "slower" and "faster"), each a list of entries sorted by node
    id (slower and faster: biggest change first)."""
    tests_a, tests_b = fold(rows_a), fold(rows_b)
    groups: dict[str, list[dict]] = {name: [] for name in (*GROUPS, "slower", "faster")}
    for nodeid in sorted(tests_a.keys() | tests_b.keys()):
        a, b = tests_a.get(nodeid), tests_b.get(nodeid)
        if a is None or b is None:
            groups["added" if a is None else "removed"].append(entry(nodeid, a, b))
            continue
        name = group_of(a.state, b.state)
        if name:
            groups[name].append(entry(nodeid, a, b))
        ran = a.state != "skipped" and b.state != "skipped"  # a skip's time is not the test's
        if ran and noticeable(a.duration, b.duration):
            groups["slower" if b.duration > a.duration else "faster"].append(entry(nodeid, a, b))
    groups["slower"].sort(key=lambda e: -e["delta"])
    groups["faster"].sort(key=lambda e: e["delta"])
    return groups
