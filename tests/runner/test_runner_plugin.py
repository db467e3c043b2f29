"""The in-run plugin's events, from real pytest runs on tiny suites."""

from __future__ import annotations

import pytest

from runner import metrics

OUTCOMES = {
    "test_outcomes.py": """
        import pytest

        def test_pass():
            pass

        def test_fail():
            assert 1 == 2

        def test_skip():
            pytest.skip("not today")

        @pytest.fixture
        def broken():
            raise RuntimeError("setup boom")

        def test_setup_error(broken):
            pass

        @pytest.fixture
        def broken_teardown():
            yield
            raise RuntimeError("teardown boom")

        def test_teardown_error(broken_teardown):
            pass

        @pytest.mark.xfail(reason="known bug")
        def test_xfail():
            assert 0

        @pytest.mark.xfail(reason="fixed already")
        def test_xpass():
            pass
    """,
}
EXPECTED = {
    "test_outcomes.py::test_pass": ("passed", "call"),
    "test_outcomes.py::test_fail": ("failed", "call"),
    "test_outcomes.py::test_skip": ("skipped", "call"),
    "test_outcomes.py::test_setup_error": ("error", "setup"),
    "test_outcomes.py::test_teardown_error": ("error", "teardown"),
    "test_outcomes.py::test_xfail": ("xfailed", "call"),
    "test_outcomes.py::test_xpass": ("xpassed", "call"),
}


def check_outcomes(run, workers):
    assert run.returncode == 1, run.output
    types = [e["type"] for e in run.events]
    assert types[0] == "session_start" and types[-1] == "session_finish"
    assert run.events[0]["workers"] == workers
    assert run.events[-1]["exitstatus"] == 1
    assert run.of_type("collected") == [{**run.of_type("collected")[0], "count": 7}]
    tests = run.by_nodeid()
    assert {k: (v[0]["outcome"], v[0]["when"]) for k, v in tests.items()} == EXPECTED
    for [t] in tests.values():
        assert t["attempt"] == 0
        assert t["start"] <= t["stop"]
        assert t["duration"] > 0
        assert isinstance(t["time"], float)
    assert "assert 1 == 2" in tests["test_outcomes.py::test_fail"][0]["longrepr"]
    assert "not today" in tests["test_outcomes.py::test_skip"][0]["longrepr"]
    assert "teardown boom" in tests["test_outcomes.py::test_teardown_error"][0]["longrepr"]
    assert tests["test_outcomes.py::test_pass"][0]["longrepr"] is None
    up = {e["worker"] for e in run.of_type("worker_up")}
    assert {t[0]["worker"] for t in tests.values()} <= up
    return tests


def test_outcomes_without_xdist(suite):
    run = suite(OUTCOMES)
    tests = check_outcomes(run, workers=1)
    assert {t[0]["worker"] for t in tests.values()} == {"gw0"}
    summary = metrics.summarize(run.tests, wall=1.0, workers=1)
    assert summary["tests"] == {
        "total": 7,
        "passed": 2,
        "failed": 1,
        "skipped": 2,
        "errors": 2,
        "flaky": 0,
    }


def test_outcomes_with_two_workers(suite):
    run = suite(OUTCOMES, "-n", "2")
    check_outcomes(run, workers=2)
    assert {e["worker"] for e in run.of_type("worker_up")} == {"gw0", "gw1"}
    downs = run.of_type("worker_down")
    assert len(downs) == 2 and not any(d["crashed"] for d in downs)


CRASHY = {
    "test_crash.py": """
        import os

        def test_before():
            pass

        def test_dies():
            os._exit(1)

        def test_after_1():
            pass

        def test_after_2():
            pass
    """,
    "test_other.py": """
        def test_x():
            pass

        def test_y():
            pass
    """,
}


def test_worker_crash_is_reported_and_the_run_goes_on(suite):
    run = suite(CRASHY, "-n", "2")
    assert run.returncode == 1, run.output
    tests = run.by_nodeid()
    assert [t["outcome"] for t in tests["test_crash.py::test_dies"]] == ["crashed"]
    crash = tests["test_crash.py::test_dies"][0]
    assert crash["when"] == "???" and "crashed" in crash["longrepr"]
    others = {k: [t["outcome"] for t in v] for k, v in tests.items() if "dies" not in k}
    assert others == {k: ["passed"] for k in others} and len(others) == 5
    down = [d for d in run.of_type("worker_down") if d["crashed"]]
    assert [d["worker"] for d in down] == [crash["worker"]]
    assert run.of_type("session_finish")[0]["exitstatus"] == 1
    summary = metrics.summarize(run.tests, wall=1.0, workers=2)
    assert summary["tests"]["total"] == 6 and summary["tests"]["failed"] == 1


def test_a_crash_retried_by_rerunfailures_is_a_rerun_attempt(suite):
    run = suite(
        {
            "test_c.py": """
        import os
        import time

        def test_dies():
            # rerunfailures learns a test's rerun budget from the worker over a socket; a
            # worker dying at once can beat that message under heavy load (its race, not ours).
            time.sleep(0.3)
            os._exit(1)

        def test_ok():
            pass
    """
        },
        "-n",
        "2",
        "--reruns",
        "1",
    )
    assert run.returncode == 1, run.output
    attempts = run.by_nodeid()["test_c.py::test_dies"]
    assert [(t["attempt"], t["outcome"]) for t in attempts] == [(0, "rerun"), (1, "crashed")]
    assert [t["outcome"] for t in run.by_nodeid()["test_c.py::test_ok"]] == ["passed"]
    counts = metrics.summarize(run.tests, wall=1.0, workers=2)["tests"]
    assert counts["total"] == 2 and counts["failed"] == 1 and counts["passed"] == 1


FLAKY = {
    "test_flaky.py": """
        from pathlib import Path

        def test_flaky(tmp_path_factory):
            marker = Path(__file__).with_name("ran_once")
            if not marker.exists():
                marker.write_text("x")
                assert False, "first attempt fails"

        def test_steady():
            pass
    """,
}


@pytest.mark.parametrize("workers", [1, 2])
def test_reruns_are_recorded_per_attempt(suite, workers):
    args = ["--reruns", "1"] + (["-n", str(workers)] if workers > 1 else [])
    run = suite(FLAKY, *args)
    assert run.returncode == 0, run.output
    attempts = run.by_nodeid()["test_flaky.py::test_flaky"]
    assert [(t["attempt"], t["outcome"]) for t in attempts] == [(0, "rerun"), (1, "passed")]
    assert "first attempt fails" in attempts[0]["longrepr"]
    summary = metrics.summarize(run.tests, wall=1.0, workers=workers)
    assert summary["tests"]["total"] == 2 and summary["tests"]["passed"] == 2
    assert summary["tests"]["flaky"] == 1 and summary["flakiness_rate"] == 0.5


def test_repeats_get_their_own_nodeids(suite):
    run = suite(
        {
            "test_rep.py": """
        import pytest

        @pytest.mark.parametrize("x", ["a", "b"])
        def test_p(x):
            pass

        def test_plain():
            pass
    """
        },
        "--count",
        "2",
        "-n",
        "2",
    )
    assert run.returncode == 0, run.output
    ids = sorted(run.by_nodeid())
    assert ids == [
        "test_rep.py::test_p[a-1-2]",
        "test_rep.py::test_p[a-2-2]",
        "test_rep.py::test_p[b-1-2]",
        "test_rep.py::test_p[b-2-2]",
        "test_rep.py::test_plain[1-2]",
        "test_rep.py::test_plain[2-2]",
    ]
    assert {metrics.base_nodeid(i) for i in ids} == {
        "test_rep.py::test_p[a]",
        "test_rep.py::test_p[b]",
        "test_rep.py::test_plain",
    }
    assert all(t["attempt"] == 0 for t in run.tests)
    assert run.of_type("collected")[0]["count"] == 6


GROUPED = {
    "test_g1.py": """
        class TestA:
            def test_1(self): pass
            def test_2(self): pass
            def test_3(self): pass

        class TestB:
            def test_1(self): pass
            def test_2(self): pass
            def test_3(self): pass

        def test_free_1(): pass
        def test_free_2(): pass
    """,
    "test_g2.py": """
        import pytest

        @pytest.mark.xdist_group("db")
        def test_db_1(): pass

        def test_loose_1(): pass

        @pytest.mark.xdist_group("db")
        def test_db_2(): pass

        def test_loose_2(): pass

        @pytest.mark.xdist_group("db")
        def test_db_3(): pass
    """,
}


def workers_by(run, key):
    groups: dict[str, set[str]] = {}
    for t in run.tests:
        groups.setdefault(key(t["nodeid"]), set()).add(t["worker"])
    return groups


def test_loadscope_keeps_classes_and_modules_together(suite):
    # 3 workers on a 2-core box: N > cores must work too.
    run = suite(GROUPED, "-n", "3", "--dist", "loadscope")
    assert run.returncode == 0, run.output
    assert len(run.tests) == 13
    groups = workers_by(run, lambda n: n.rsplit("::", 1)[0])
    assert all(len(w) == 1 for w in groups.values()), groups


def test_loadfile_keeps_files_together(suite):
    run = suite(GROUPED, "-n", "2", "--dist", "loadfile")
    assert run.returncode == 0, run.output
    groups = workers_by(run, lambda n: n.split("::")[0])
    assert all(len(w) == 1 for w in groups.values()), groups


def test_loadgroup_keeps_marked_tests_together(suite):
    run = suite(GROUPED, "-n", "2", "--dist", "loadgroup")
    assert run.returncode == 0, run.output
    db = [t for t in run.tests if t["group"] == "db"]
    assert len(db) == 3 and len({t["worker"] for t in db}) == 1
    # Node ids stay the plain ones, whether or not xdist appended "@db" to them.
    assert sorted(t["nodeid"] for t in db) == [f"test_g2.py::test_db_{i}" for i in (1, 2, 3)]
    assert all(t["group"] is None for t in run.tests if "test_db_" not in t["nodeid"])


def test_longest_known_test_runs_first(suite):
    files = {
        "test_lpt.py": "\n".join(
            [f"def test_short_{i}(): pass" for i in range(8)] + ["def test_long(): pass"]
        )
    }
    durations = {f"test_lpt.py::test_short_{i}": 0.01 for i in range(8)}
    durations["test_lpt.py::test_long"] = 5.0
    run = suite(files, "-n", "2", durations=durations)
    assert run.returncode == 0, run.output
    long = run.by_nodeid()["test_lpt.py::test_long"][0]
    same_worker = [t for t in run.tests if t["worker"] == long["worker"]]
    assert min(same_worker, key=lambda t: t["start"]) is long


def test_scheduler_can_be_switched_back_to_stock_xdist(suite):
    files = {"test_s.py": "def test_a(): pass\ndef test_b(): pass\n"}
    ours = suite(files, "-n", "2", "-v")
    assert "scheduling tests via PTDScheduling" in ours.output
    stock = suite(files, "-n", "2", "-v", env={"PTD_SCHEDULER": "xdist"})
    assert "scheduling tests via LoadScheduling" in stock.output
    assert len(stock.tests) == 2


def test_collection_errors_are_reported(suite):
    run = suite({"test_bad.py": "import no_such_module_ptd\n", "test_ok.py": "def test_a(): pass"})
    assert run.returncode == 2
    [err] = run.of_type("collect_error")
    assert err["nodeid"] == "test_bad.py" and "no_such_module_ptd" in err["longrepr"]
    assert run.of_type("session_finish")[0]["exitstatus"] == 2


def test_without_events_fd_the_plugin_is_silent(tmp_path):
    import os
    import subprocess
    import sys

    from runner.command import PLUGIN_MODULE, build_env

    (tmp_path / "test_q.py").write_text("def test_a(): pass\n")
    env = build_env(os.environ, {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}, None, None)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", PLUGIN_MODULE, "-q", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_workers_skip_the_terminal_summary(suite, tmp_path):
    marker_dir = tmp_path / "summaries"
    marker_dir.mkdir()
    run = suite(
        {
            "conftest.py": f"""
            import os

            def pytest_terminal_summary(terminalreporter):
                name = os.environ.get("PYTEST_XDIST_WORKER", "controller")
                open(os.path.join({str(marker_dir)!r}, name), "w").close()
        """,
            "test_s.py": "def test_a(): pass\ndef test_b(): pass\n",
        },
        "-n",
        "2",
    )
    assert run.returncode == 0, run.output
    assert sorted(p.name for p in marker_dir.iterdir()) == ["controller"]


# A worker whose groups never reach the controller (as when its in-run plugin cannot write
# them): PTD must say so, in the log and as an event, rather than split groups silently.
NO_GROUPS_FROM_WORKERS = """
def pytest_configure(config):
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        workerinput.pop("ptd_groups_dir", None)
"""


def test_loadgroup_without_the_workers_groups_warns_loudly(suite):
    run = suite(
        {**GROUPED, "conftest.py": NO_GROUPS_FROM_WORKERS}, "-n", "2", "--dist", "loadgroup"
    )
    assert run.returncode == 0, run.output
    [warning] = run.of_type("warning")
    assert "did not report its tests' xdist_group marks" in warning["message"]
    assert "ptd warning: --dist loadgroup: worker gw" in run.output
