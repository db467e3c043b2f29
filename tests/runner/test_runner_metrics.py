"""runner.metrics on hand-computed cases."""

from __future__ import annotations

import pytest

from runner import metrics


def t(nodeid, outcome="passed", worker="gw0", duration=1.0, attempt=0):
    return {
        "type": "test",
        "nodeid": nodeid,
        "worker": worker,
        "outcome": outcome,
        "duration": duration,
        "attempt": attempt,
    }


@pytest.mark.parametrize(
    ("nodeid", "base"),
    [
        ("a.py::t", "a.py::t"),
        ("a.py::t[1-4]", "a.py::t"),
        ("a.py::t[4-4]", "a.py::t"),
        ("a.py::t[x-2-3]", "a.py::t[x]"),
        ("a.py::t[x-y-2-3]", "a.py::t[x-y]"),
        ("a.py::C::t[10-12]", "a.py::C::t"),
        ("a.py::t[5-4]", "a.py::t[5-4]"),  # not a repeat id: i > N
        ("a.py::t[x]", "a.py::t[x]"),
        ("a.py::t[2-3]@db", "a.py::t"),
        ("a.py::t[a@b]", "a.py::t[a@b]"),
        ("dir@x/a.py::t", "dir@x/a.py::t"),
    ],
)
def test_base_nodeid(nodeid, base):
    assert metrics.base_nodeid(nodeid) == base


def test_speedup_and_efficiency():
    tests = [
        t("a", duration=3.0, worker="gw0"),
        t("b", duration=1.0, worker="gw1"),
        t("c", duration=2.0, worker="gw1"),
    ]
    assert metrics.serial_seconds(tests) == 6.0
    assert metrics.speedup(6.0, 4.0) == 1.5
    assert metrics.efficiency(1.5, 2) == 0.75
    assert metrics.speedup(6.0, 0) is None
    assert metrics.efficiency(None, 2) is None


def test_worker_stats_and_balance():
    tests = [
        t("a", duration=3.0, worker="gw0"),
        t("b", duration=1.0, worker="gw1"),
        t("c", duration=1.0, worker="gw1"),
    ]
    stats = metrics.worker_stats(tests)
    assert stats == {
        "gw0": {"tests": 1, "busy_seconds": 3.0},
        "gw1": {"tests": 2, "busy_seconds": 2.0},
    }
    # max 3 / mean 2.5
    assert metrics.balance({"gw0": 3.0, "gw1": 2.0}) == pytest.approx(1.2)
    assert metrics.balance([2.0, 2.0]) == 1.0
    assert metrics.balance({}) is None
    assert metrics.balance([0.0, 0.0]) is None


def test_flakiness():
    tests = [
        t("f.py::a", "rerun"),
        t("f.py::a", "passed", attempt=1),  # flaky via rerun
        t("f.py::b[1-2]", "passed"),
        t("f.py::b[2-2]", "failed"),  # flaky via repeat
        t("f.py::c", "failed"),  # plain failure
        t("f.py::d", "passed"),
        t("f.py::e", "skipped"),  # not executed
        t("f.py::g", "xfailed"),
    ]
    assert metrics.flaky_tests(tests) == {"f.py::a", "f.py::b"}
    # executed: a, b, c, d, g -> 2 / 5
    assert metrics.flakiness_rate(tests) == pytest.approx(0.4)
    assert metrics.flakiness_rate([t("x", "skipped")]) is None


def test_summarize():
    tests = [
        t("a", "passed", "gw0", 2.0),
        t("b", "rerun", "gw1", 1.0),
        t("b", "passed", "gw0", 1.0, attempt=1),
        t("c", "failed", "gw1", 0.5),
        t("d", "crashed", "gw1", 0.0),
        t("e", "error", "gw1", 0.25),
        t("f", "skipped", "gw1", 0.0),
        t("g", "xfailed", "gw1", 0.25),
        t("h", "xpassed", "gw0", 1.0),
    ]
    s = metrics.summarize(tests, wall=4.0, workers=2)
    assert s["serial_seconds"] == 6.0
    assert s["wall_seconds"] == 4.0
    assert s["speedup"] == 1.5
    assert s["efficiency"] == 0.75
    # busy gw0 = 4.0, gw1 = 2.0 -> 4 / 3
    assert s["balance"] == pytest.approx(4 / 3)
    assert s["tests"] == {
        "total": 8,
        "passed": 3,
        "failed": 2,
        "skipped": 2,
        "errors": 1,
        "flaky": 1,
    }
    assert s["flakiness_rate"] == pytest.approx(1 / 7)
    assert s["per_worker"] == [
        {"id": "gw0", "tests": 3, "busy_seconds": 4.0},
        {"id": "gw1", "tests": 6, "busy_seconds": 2.0},
    ]


def test_summarize_counts_idle_workers_and_sorts_numerically():
    tests = [t("a", worker="gw10", duration=2.0), t("b", worker="gw2", duration=2.0)]
    s = metrics.summarize(tests, wall=2.0, workers=4)
    assert [w["id"] for w in s["per_worker"]] == ["gw2", "gw10"]
    assert s["balance"] == 2.0  # busy 2, 2, 0, 0 -> max 2 / mean 1


def test_summarize_empty_run():
    s = metrics.summarize([], wall=1.0, workers=2)
    assert s["serial_seconds"] == 0 and s["balance"] is None
    assert s["speedup"] is None and s["efficiency"] is None  # shown as "-", not 0.00x
    assert s["tests"]["total"] == 0 and s["per_worker"] == []
    assert metrics.summarize([], wall=None, workers=2)["speedup"] is None


def test_a_crash_superseded_by_a_later_attempt_counts_once_and_is_not_flaky():
    """A lost machine's test (runs across machines) crashed there and passed elsewhere."""
    tests = [
        {"nodeid": "t.py::a", "outcome": "crashed", "duration": 0.0},
        {"nodeid": "t.py::a", "outcome": "passed", "duration": 1.0},
        {"nodeid": "t.py::b", "outcome": "crashed", "duration": 0.5},
    ]
    counts = metrics.count_outcomes(tests)
    assert (counts["total"], counts["passed"], counts["failed"]) == (2, 1, 1)
    assert metrics.flaky_tests(tests) == set()
    # Without node ids (the sink's running counts) every crash counts.
    assert metrics.count_outcomes([{"outcome": "crashed"}, {"outcome": "passed"}])["total"] == 2
