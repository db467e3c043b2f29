"""runs.insight on hand-computed data: the Amdahl fit, the recommendation, the breakdown."""

from __future__ import annotations

import pytest

from runs.insight import breakdown, scaling


def runs_at(walls: dict[int, float]) -> list[dict]:
    return [{"id": n, "workers": n, "wall_seconds": w} for n, w in walls.items()]


def test_amdahl_fit_on_hand_computed_walls():
    # wall(1) = 10, wall(2) = 6, wall(4) = 4: x = 1 - 1/N = 0.5, 0.75; y = wall/wall1 - 1/N =
    # 0.1, 0.15; s = (0.5·0.1 + 0.75·0.15) / (0.25 + 0.5625) = 0.1625 / 0.8125 = 0.2.
    pts = scaling.points(runs_at({1: 10.0, 2: 6.0, 4: 4.0}))
    assert [p["speedup"] for p in pts] == [1.0, pytest.approx(10 / 6, abs=1e-4), 2.5]
    assert scaling.fit_serial_fraction(pts) == pytest.approx(0.2)
    assert scaling.amdahl(0.2, 4) == pytest.approx(2.5)  # these walls are exactly Amdahl's


def test_fit_needs_a_one_worker_point_and_is_clamped():
    assert scaling.fit_serial_fraction(scaling.points(runs_at({2: 5.0, 4: 3.0}))) is None
    assert scaling.fit_serial_fraction(scaling.points(runs_at({1: 10.0}))) is None
    # Slower with more workers: beyond Amdahl's model, the fraction stops at 1.
    assert scaling.fit_serial_fraction(scaling.points(runs_at({1: 10.0, 2: 12.0}))) == 1.0


def test_recommendation_is_the_smallest_count_within_ten_percent_of_the_best():
    pts = scaling.points(runs_at({1: 10.0, 2: 3.6, 4: 3.3, 8: 3.4}))
    workers, reason = scaling.recommend(pts)
    assert workers == 2  # 3.6 <= 1.1 × 3.3 (4 is at efficiency 0.76); 1 worker (10 s) is not
    assert "smallest count within 10 % of the best wall" in reason and "4" in reason
    assert scaling.recommend([]) == (None, scaling.recommend([])[1])


def test_recommendation_stays_among_counts_at_efficiency_target():
    # 8 workers is fastest but at efficiency 0.74: the page must not recommend it while saying
    # the largest count at efficiency >= 0.75 is 4 (review M6).
    runs = runs_at({1: 10.0, 2: 5.0, 4: 3.3, 8: 10.0 / (8 * 0.74)})
    data = scaling.analyse(runs, cores=2)
    assert data["recommended_workers"] == 4
    kinds = {e["kind"]: e["message"] for e in data["explanations"]}
    assert "is 4 (0.76)" in kinds["efficiency"]
    assert "efficiency 0.74, below 0.75" in data["reason"]
    assert "efficiency ≥ 0.75" in data["rule"]


def test_recommendation_without_efficiencies_says_so():
    workers, reason = scaling.recommend(scaling.points(runs_at({2: 5.0, 4: 3.0})))
    assert workers == 4 and "No count is known to reach efficiency 0.75" in reason


def test_serial_fraction_has_one_format():
    runs = runs_at({1: 10.0, 2: 5.23, 4: 2.95})
    data = scaling.analyse(runs, cores=2)
    kinds = {e["kind"]: e["message"] for e in data["explanations"]}
    assert f"serial fraction is {data['serial_fraction']:.3f}" in kinds["amdahl"]  # as the page


def test_point_is_the_median_of_the_latest_runs_at_that_count():
    runs = [
        {"id": i, "workers": 2, "wall_seconds": w} for i, w in enumerate([3, 9, 4, 100, 100, 100])
    ]
    (point,) = scaling.points(runs)
    assert point["wall_seconds"] == 9  # median of the 5 newest (3, 9, 4, 100, 100)
    assert point["runs"] == [0, 1, 2, 3, 4]


def test_explanations_name_cores_longest_test_startup_and_amdahl():
    runs = runs_at({1: 10.0, 2: 5.5, 4: 5.4, 8: 5.6})
    runs[-1]["time_breakdown"] = {"startup": 2.5, "wall": 5.6}
    data = scaling.analyse(runs, cores=2, longest={"nodeid": "t.py::test_long", "seconds": 4.0})
    kinds = {e["kind"]: e["message"] for e in data["explanations"]}
    assert "This machine has 2 cores" in kinds["cores"] and "no faster" in kinds["cores"]
    assert "t.py::test_long" in kinds["longest"]
    assert "start-up takes 2.5 s" in kinds["startup"]
    assert "serial fraction" in kinds["amdahl"]
    assert data["recommended_workers"] == 2
    assert data["fit"][0] == {"workers": 1, "speedup": 1.0}


def attempt(nodeid, worker, start, duration):
    return {"nodeid": nodeid, "worker": worker, "start": start, "stop": start + duration,
            "duration": duration}  # fmt: skip


def test_breakdown_of_hand_made_phases():
    # launch 100, session 101, collected 103, tests 104..110 on 2 workers, exit 112.
    tests = [attempt("a.py::t1", "gw0", 104, 6), attempt("a.py::t2", "gw1", 104, 1)]
    b = breakdown.compute(
        launch=100.0,
        wall=12.0,
        marks={"session_start": 101.0, "collected": 103.0},
        tests=tests,
        workers=2,
    )
    assert (b["startup"], b["collection"], b["tests"], b["teardown"]) == (2.0, 2.0, 6.0, 2.0)
    assert b["idle"] == 5.0  # gw1: 6 - 1
    assert b["tail"] == 5.0  # gw1 was done at 105, the phase ended at 110
    assert b["idle_share"] == pytest.approx(5 / 12, abs=1e-4)
    assert b["longest_test"] == {"nodeid": "a.py::t1", "seconds": 6.0}
    parts = {f["part"]: f["message"] for f in b["findings"]}
    assert set(parts) == {"idle"}  # start-up 17 %, collection 17 %, teardown 17 %: fine
    assert "The longest test, a.py::t1" in parts["idle"]
    segments = breakdown.bar(b, width=120)
    assert [s["width"] for s in segments] == [20.0, 20.0, 35.0, 25.0, 20.0]  # 12 s → 120 px
    assert [s["bad"] for s in segments] == [False, False, False, True, False]


def test_a_run_stopped_mid_test_calls_nothing_idle_nor_teardown():
    """Cancelled while gw0 was in a 20 s test: it has no result, and the run was said to have
    one worker idle 100 % (use fewer workers), or, timed out, 93 % teardown."""
    tests = [attempt(f"a.py::t{i}", "gw1", 104 + i, 1) for i in range(3)]
    for stopped in ("cancelled", "timed out", "interrupted"):
        marks = {"session_start": 101.0, "collected": 103.0}
        b = breakdown.compute(
            launch=100.0, wall=30.0, marks=marks, tests=tests, workers=2, stopped=stopped
        )
        assert (b["tests"], b["teardown"], b["stopped"]) == (26.0, 0.0, stopped)
        assert (b["idle"], b["idle_share"], b["tail"]) == (0.0, 0.0, 0.0)
        (finding,) = b["findings"]
        assert finding["message"].startswith(f"The run was {stopped} before its tests were over")
    finished = breakdown.compute(launch=100.0, wall=30.0, marks={}, tests=tests, workers=2)
    assert {f["part"] for f in finished["findings"]} == {"idle", "teardown"}


def test_breakdown_names_the_loadscope_unit_that_holds_most_tests():
    tests = [attempt(f"big.py::test_{i}", "gw0", 10 + i, 1) for i in range(22)]
    tests += [attempt(f"small_{i}.py::test", f"gw{1 + i % 7}", 10, 1) for i in range(23)]
    b = breakdown.compute(launch=9.0, wall=23.5, marks={}, tests=tests, workers=8, dist="loadscope")
    (idle,) = [f["message"] for f in b["findings"] if f["part"] == "idle"]
    assert idle.startswith("One loadscope unit (big.py) holds 22 of 45 tests: 7 of 8 workers")


def test_startup_finding_and_a_run_without_tests():
    b = breakdown.compute(launch=0.0, wall=10.0, marks={"session_start": 5.0, "collected": 5.5},
                          tests=[attempt("t.py::t", "gw0", 6.0, 3.5)], workers=1)  # fmt: skip
    (finding,) = b["findings"]
    assert finding["part"] == "startup"
    assert finding["message"].startswith("Start-up is 55 % of this run's wall")
    empty = breakdown.compute(launch=0.0, wall=2.0, marks={"session_start": 1.0}, tests=[],
                              workers=2)  # fmt: skip
    assert empty["tests"] == 0 and empty["startup"] + empty["teardown"] == 2.0
    assert breakdown.compute(launch=None, wall=2.0, marks={}, tests=[], workers=1) is None
    # An ingested run may say it took 5e-102 s: it was rounded to 0 and divided by (a 500).
    assert breakdown.compute(launch=0.0, wall=5e-102, marks={}, tests=[], workers=1) is None


def test_the_amdahl_cap_names_the_longest_test_when_it_binds_first():
    # Walls of a small serial fraction: Amdahl allows ~20x, but a 2.5 s test in a 23 s suite
    # allows 9.2x: both caps are said, so the two explanations do not contradict each other.
    runs = runs_at({1: 23.0, 2: 11.9, 4: 6.3, 8: 4.3})
    data = scaling.analyse(runs, cores=2, longest={"nodeid": "t.py::test_long", "seconds": 2.5})
    amdahl = {e["kind"]: e["message"] for e in data["explanations"]}["amdahl"]
    assert "The longest test caps it lower: 9.2× (23.0 s at 1 worker / 2.5 s)" in amdahl
    quick = scaling.analyse(runs, cores=2, longest={"nodeid": "t.py::t", "seconds": 0.1})
    assert "caps it lower" not in {e["kind"]: e["message"] for e in quick["explanations"]}["amdahl"]


def test_the_breakdown_names_the_longest_test_even_with_no_tail():
    """A 1-worker run has no tail (no worker is ever done early), yet its longest test is
    what bounds every other count's wall: the page still names it."""
    from types import SimpleNamespace

    from django.template.loader import render_to_string

    b = {"wall": 23.3, "tail": 0.0, "idle": 0.05, "idle_share": 0.002, "findings": [],
         "longest_test": {"nodeid": "t.py::test_long[2.5]", "seconds": 2.506}}  # fmt: skip
    bar = [{"key": "tests", "label": "tests", "seconds": 23.3, "width": 800, "x": 0,
            "label_x": 4, "fill": "#2563eb", "share": 1.0, "bad": False}]  # fmt: skip
    html = render_to_string(
        "runs/_time_breakdown.html",
        {"run": SimpleNamespace(breakdown=b, is_active=False), "breakdown_bar": bar},
    )
    assert "longest test 2.51 s" in html and "t.py::test_long[2.5]" in html
    assert "tail (some worker" not in html
    assert "(0.05 worker-seconds" in html  # as the bar rounds it, not 0.0


def test_a_stopped_runs_breakdown_says_how_in_lower_case():
    from datetime import UTC, datetime

    from runs.execution.timing import time_breakdown
    from runs.models import Run

    tests = [attempt("a.py::t", "gw1", 104, 1)]
    for status, said in (("cancelled", "cancelled"), ("timed_out", "timed out"),
                         ("interrupted", "interrupted"), ("failed", None)):  # fmt: skip
        run = Run(status=status, started_at=datetime.fromtimestamp(100, UTC), wall_seconds=30.0,
                  workers=2, config_snapshot={})  # fmt: skip
        b = time_breakdown(run, tests)
        assert b.get("stopped") == said
        if said:
            assert b["findings"][0]["message"].startswith(f"The run was {said} before")
