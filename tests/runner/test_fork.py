"""The fork engine against the xdist engine: the same behaviour, from real runs of tiny suites."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from runner import metrics
from runner.command import build_argv


def parallel(engine: str, n: int = 2, dist: str | None = None) -> list[str]:
    if engine == "fork":
        args = ["--ptd-workers", str(n)]
        return args + (["--ptd-dist", dist] if dist else [])
    return ["-n", str(n)] + (["--dist", dist] if dist else [])


both = pytest.mark.parametrize("engine", ["xdist", "fork"])

OUTCOMES = {
    "test_outcomes.py": """
        import pytest, warnings

        def test_pass():
            print("hello from a test")

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

        def test_warns():
            warnings.warn(UserWarning("mind the gap"))
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
    "test_outcomes.py::test_warns": ("passed", "call"),
}


@both
def test_outcomes_events_and_terminal(suite, engine):
    run = suite(OUTCOMES, *parallel(engine), "-rA")
    assert run.returncode == 1, run.output
    types = [e["type"] for e in run.events]
    assert types[0] == "session_start" and types[-1] == "session_finish"
    assert run.events[0]["workers"] == 2 and run.events[-1]["exitstatus"] == 1
    assert run.of_type("collected")[0]["count"] == 8
    tests = run.by_nodeid()
    assert {k: (v[0]["outcome"], v[0]["when"]) for k, v in tests.items()} == EXPECTED
    for [t] in tests.values():
        assert t["attempt"] == 0 and t["start"] <= t["stop"] and t["duration"] > 0
    assert "assert 1 == 2" in tests["test_outcomes.py::test_fail"][0]["longrepr"]
    assert "teardown boom" in tests["test_outcomes.py::test_teardown_error"][0]["longrepr"]
    assert {e["worker"] for e in run.of_type("worker_up")} == {"gw0", "gw1"}
    assert {t[0]["worker"] for t in tests.values()} <= {"gw0", "gw1"}
    downs = run.of_type("worker_down")
    assert len(downs) == 2 and not any(d["crashed"] for d in downs)
    # One ordinary session for the terminal: summary, captured output, warnings.
    assert "1 failed, 3 passed, 1 skipped, 1 xfailed, 1 xpassed, 1 warning, 2 errors" in (
        run.output
    )
    assert "hello from a test" in run.output
    assert "UserWarning: mind the gap" in run.output
    assert re.search(r"\[gw[01]\] linux -- Python", run.output)


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


@both
def test_a_crashed_worker_is_replaced_and_the_run_goes_on(suite, engine):
    run = suite(CRASHY, *parallel(engine))
    assert run.returncode == 1, run.output
    tests = run.by_nodeid()
    [crash] = tests.pop("test_crash.py::test_dies")
    assert crash["outcome"] == "crashed" and crash["when"] == "???"
    assert "crashed" in crash["longrepr"]
    assert {k: [t["outcome"] for t in v] for k, v in tests.items()} == {
        k: ["passed"] for k in tests
    }
    assert len(tests) == 5
    down = [d for d in run.of_type("worker_down") if d["crashed"]]
    assert [d["worker"] for d in down] == [crash["worker"]]
    summary = metrics.summarize(run.tests, wall=1.0, workers=2)
    assert summary["tests"]["total"] == 6 and summary["tests"]["failed"] == 1


# A worker holding several tests when one of them kills it: the results of the tests it ran
# before must reach the controller, and the crash must be the dying test's alone. The slow
# first test makes the old worker, which sent its results every 5 ms, send there and then
# hold test_quick's result when test_dies killed it.
AFTER = ("after_1", "after_2", "after_3")
CRASH_AFTER_QUICK_ONES = {
    "test_held.py": "import os, time\n\n"
    "def test_slow_first():\n    time.sleep(0.02)\n\n"
    "def test_quick():\n    pass\n\n"
    "def test_dies():\n    os._exit(1)\n\n"
    + "".join(f"def test_{name}():\n    pass\n\n" for name in AFTER),
}


@both
def test_a_crash_loses_none_of_the_results_its_worker_had(suite, engine):
    run = suite(CRASH_AFTER_QUICK_ONES, *parallel(engine, dist="loadfile"))
    outcomes = {k: [t["outcome"] for t in v] for k, v in run.by_nodeid().items()}
    assert outcomes.pop("test_held.py::test_dies") == ["crashed"], run.output
    assert outcomes == {
        f"test_held.py::test_{name}": ["passed"] for name in ("slow_first", "quick", *AFTER)
    }, run.output


# Failures whose reports are larger than a pipe holds (a 200 KB assertion message each):
# a worker waiting for room in its result pipe rings for it to be read.
BIG_REPORTS = {
    "test_big.py": """
        import pytest

        @pytest.mark.parametrize("i", range(12))
        def test_big(i):
            assert False, f"{i}:" + "x" * 200_000
    """,
}


@both
def test_reports_larger_than_a_pipe_arrive_whole(suite, engine):
    run = suite(BIG_REPORTS, *parallel(engine))
    tests = run.by_nodeid()
    assert len(tests) == 12, run.output
    for nodeid, [test] in tests.items():
        i = nodeid.partition("[")[2].rstrip("]")
        assert test["outcome"] == "failed"
        assert f"AssertionError: {i}:" + "x" * 1000 in test["longrepr"]


FLAKY = {
    "test_flaky.py": """
        from pathlib import Path

        def test_flaky():
            marker = Path(__file__).with_name("ran_once")
            if not marker.exists():
                marker.write_text("x")
                assert False, "first attempt fails"

        def test_steady():
            pass
    """,
}


@both
def test_reruns_are_recorded_per_attempt(suite, engine):
    run = suite(FLAKY, *parallel(engine), "--reruns", "1")
    assert run.returncode == 0, run.output
    attempts = run.by_nodeid()["test_flaky.py::test_flaky"]
    assert [(t["attempt"], t["outcome"]) for t in attempts] == [(0, "rerun"), (1, "passed")]
    assert "first attempt fails" in attempts[0]["longrepr"]
    assert metrics.summarize(run.tests, wall=1.0, workers=2)["tests"]["flaky"] == 1


@both
def test_as_many_tests_as_workers_run_side_by_side(suite, engine):
    """The first worker took a second test to look ahead to (it needs its next item), and 2
    tests on 2 workers ran one after the other on it while the other sat idle."""
    files = {"test_two.py": "import time\n\ndef test_a():\n    time.sleep(0.3)\n\n"
                            "def test_b():\n    time.sleep(0.3)\n"}  # fmt: skip
    run = suite(files, *parallel(engine))
    assert run.returncode == 0, run.output
    a, b = (run.by_nodeid()[f"test_two.py::test_{x}"][0] for x in "ab")
    assert a["worker"] != b["worker"], (a, b)
    assert a["start"] < b["stop"] and b["start"] < a["stop"]  # side by side


@both
def test_repeats_get_their_own_nodeids(suite, engine):
    files = {"test_rep.py": "def test_plain():\n    pass\n"}
    run = suite(files, *parallel(engine), "--count", "3")
    assert run.returncode == 0, run.output
    assert sorted(run.by_nodeid()) == [f"test_rep.py::test_plain[{i}-3]" for i in (1, 2, 3)]


GROUPED = {
    "test_g1.py": """
        class TestA:
            def test_1(self): pass
            def test_2(self): pass
            def test_3(self): pass

        class TestB:
            def test_1(self): pass
            def test_2(self): pass

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

        @pytest.mark.xdist_group("db")
        def test_db_3(): pass
    """,
}


def workers_by(run, key):
    groups: dict[str, set[str]] = {}
    for t in run.tests:
        groups.setdefault(key(t["nodeid"]), set()).add(t["worker"])
    return groups


@both
@pytest.mark.parametrize(
    "dist, key",
    [
        ("loadscope", lambda n: n.split("@")[0].rsplit("::", 1)[0]),
        ("loadfile", lambda n: n.split("::")[0]),
        ("loadgroup", lambda n: "db" if "test_db_" in n else n),
    ],
)
def test_grouping_modes_keep_units_on_one_worker(suite, engine, dist, key):
    # 3 workers on a 2-core box: N > cores works too.
    run = suite(GROUPED, *parallel(engine, 3, dist))
    assert run.returncode == 0, run.output
    assert len(run.tests) == 11
    groups = workers_by(run, key)
    assert all(len(w) == 1 for w in groups.values()), groups


def _junit_cases(path):
    root = ET.parse(path).getroot()
    suite = root.find("testsuite")
    totals = {k: suite.get(k) for k in ("tests", "errors", "failures", "skipped")}
    cases = []
    for case in suite.iter("testcase"):
        children = []
        for child in case:
            text = (child.text or "").strip()
            # The worker line ("[gw0] linux -- Python ...") is the only legitimate difference.
            text = "\n".join(line for line in text.splitlines() if not line.startswith("[gw"))
            text = re.sub(r"/suite\d+/", "/suite/", text)  # each run gets its own directory
            children.append((child.tag, tuple(sorted(child.attrib.items())), text))
        attrs = {k: v for k, v in case.attrib.items() if k != "time"}
        cases.append((tuple(sorted(attrs.items())), tuple(children)))
    return totals, sorted(cases)


@both
def test_junitxml_matches_a_serial_run(suite, engine, tmp_path):
    files = {
        **OUTCOMES,
        "test_props.py": """
            def test_with_property(record_property):
                record_property("answer", 42)
                print("to stdout")
        """,
    }
    serial_xml, parallel_xml = tmp_path / "serial.xml", tmp_path / "parallel.xml"
    serial = suite(files, f"--junitxml={serial_xml}", "-o", "junit_logging=all")
    run = suite(files, *parallel(engine), f"--junitxml={parallel_xml}", "-o", "junit_logging=all")
    assert serial.returncode == run.returncode == 1, run.output
    assert _junit_cases(parallel_xml) == _junit_cases(serial_xml)
    assert "answer" in parallel_xml.read_text()


def test_build_argv_for_the_fork_engine():
    argv = build_argv("/py", workers=4, dist="loadfile", engine="fork")
    assert argv[argv.index("--ptd-workers") + 1] == "4"
    assert argv[argv.index("--ptd-dist") + 1] == "loadfile"
    assert "-n" not in argv and "-p" in argv
    assert "--ptd-workers" not in build_argv("/py", workers=1, engine="fork")
    with pytest.raises(ValueError):
        build_argv("/py", workers=2, engine="threads")
