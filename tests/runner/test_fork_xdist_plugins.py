"""Plugins written for xdist work on the fork engine: crash reruns, workeroutput, pytest-cov.

Real runs of tiny suites, compared with xdist (or with a serial run) where both can do it.
"""

from __future__ import annotations

import json
import re

import pytest

from runner import metrics
from tests.runner.test_fork import both, parallel

# test_flaky_crash kills its worker the first time only; test_always_crash every time.
CRASHES = {
    "test_crashes.py": """
        import os, signal
        from pathlib import Path

        def test_flaky_crash():
            marker = Path(__file__).with_name("crashed_once")
            if not marker.exists():
                marker.write_text("x")
                os.kill(os.getpid(), signal.SIGKILL)

        def test_always_crash():
            os._exit(3)

        def test_fine():
            pass
    """,
}


def outcomes(run) -> dict[str, list[str]]:
    return {k: [t["outcome"] for t in v] for k, v in run.by_nodeid().items()}


@both
def test_reruns_rerun_a_test_that_killed_its_worker(suite, engine):
    run = suite(CRASHES, *parallel(engine), "--reruns", "1")
    assert run.returncode == 1, run.output
    assert outcomes(run) == {
        "test_crashes.py::test_flaky_crash": ["rerun", "passed"],
        "test_crashes.py::test_always_crash": ["rerun", "crashed"],
        "test_crashes.py::test_fine": ["passed"],
    }
    tests = run.by_nodeid()
    for attempts in tests.values():
        assert [t["attempt"] for t in attempts] == list(range(len(attempts)))
    crash = tests["test_crashes.py::test_flaky_crash"][0]
    assert crash["when"] == "???" and "crashed while running" in crash["longrepr"]
    assert "1 failed, 2 passed, 2 rerun" in run.output
    assert len([d for d in run.of_type("worker_down") if d["crashed"]]) == 3
    summary = metrics.summarize(run.tests, wall=1.0, workers=2)["tests"]
    assert (summary["total"], summary["failed"], summary["flaky"]) == (3, 1, 1)


def test_a_dead_workers_status_connection_ends_its_reader():
    """rerunfailures < 15 reads its status connections byte by byte and took the end of file
    for a byte, spinning for good once a worker died (16 s per crash in the controller). The
    connection the controller's server reads ends in a ConnectionError instead."""
    import socket

    from _ptd_inrun.fork.plugins import _EndsAtEof

    ours, theirs = socket.socketpair()
    with _EndsAtEof(ours) as conn:
        theirs.sendall(b"set|gw0|t|1\n")
        theirs.close()  # the worker dies
        read = b""
        with pytest.raises(ConnectionError):
            for _ in range(1000):  # rerunfailures 14's loop: recv(1) until the delimiter
                read += conn.recv(1)
        assert read == b"set|gw0|t|1\n"
    assert ours.fileno() == -1  # closed with the connection, as `with conn` does


def test_a_rerun_crash_counts_against_reruns_like_any_failure(suite):
    """The worker's attempt count comes from the controller: a crash then a failure is 2."""
    files = {
        "test_twice.py": """
            import os
            from pathlib import Path

            def test_crash_then_fail():
                marker = Path(__file__).with_name("crashed_once")
                if not marker.exists():
                    marker.write_text("x")
                    os._exit(1)
                assert False, "second attempt fails"
        """,
    }
    run = suite(files, *parallel("fork", 1), "--reruns", "1")
    assert run.returncode == 1, run.output
    assert outcomes(run) == {"test_twice.py::test_crash_then_fail": ["rerun", "failed"]}


@both
def test_a_crash_is_rerun_even_when_the_status_server_reads_late(suite, engine):
    """The worker sends the rerun count without waiting, then dies at once: the controller
    reaps it before the server thread has read that count. Here the server is made slow to
    store it (0.3 s); the crash handler must still see the count and rerun the test."""
    files = {
        "conftest.py": """
            import time
            import pytest_rerunfailures as rf

            store = rf.ServerStatusDB._set

            def slow_set(self, i, k, v):
                if k == "r":
                    time.sleep(0.3)
                store(self, i, k, v)

            rf.ServerStatusDB._set = slow_set
        """,
        "test_crash.py": """
            import os
            from pathlib import Path

            def test_crash_once():
                marker = Path(__file__).with_name("crashed_once")
                if not marker.exists():
                    marker.write_text("x")
                    os._exit(1)
        """,
    }
    run = suite(files, *parallel(engine, 1), "--reruns", "1")
    assert run.returncode == 0, run.output
    assert outcomes(run) == {"test_crash.py::test_crash_once": ["rerun", "passed"]}


def test_crash_reruns_in_loadfile_mode_keep_the_file_on_one_worker(suite):
    files = {
        "test_file.py": """
            import os
            from pathlib import Path

            def test_a():
                pass

            def test_crash_once():
                marker = Path(__file__).with_name("crashed_once")
                if not marker.exists():
                    marker.write_text("x")
                    os._exit(1)

            def test_c():
                pass
        """,
        "test_other.py": "def test_x():\n    pass\n",
    }
    run = suite(files, *parallel("fork", 2, "loadfile"), "--reruns", "1")
    assert run.returncode == 0, run.output
    assert outcomes(run)["test_file.py::test_crash_once"] == ["rerun", "passed"]
    workers = {t["worker"] for t in run.tests if t["nodeid"].startswith("test_file.py")}
    assert len(workers) == 1


def test_without_xdist_a_crash_is_a_failure(suite):
    """No xdist, no pytest_handlecrashitem: rerunfailures cannot rerun crashes (as serially)."""
    run = suite(CRASHES, "-p", "no:xdist", *parallel("fork"), "--reruns", "1")
    assert run.returncode == 1, run.output
    assert outcomes(run) == {
        "test_crashes.py::test_flaky_crash": ["crashed"],
        "test_crashes.py::test_always_crash": ["crashed"],
        "test_crashes.py::test_fine": ["passed"],
    }


# A plugin using xdist's channel back from the workers: each worker counts its tests in
# config.workeroutput, the controller reads node.workeroutput in pytest_testnodedown.
NODEDOWN = {
    "conftest.py": """
        import json, threading
        from pathlib import Path

        import pytest

        DOWN = []

        @pytest.fixture(autouse=True)
        def count(request):
            output = getattr(request.config, "workeroutput", None)
            if output is not None:
                output["ran"] = output.get("ran", 0) + 1
                if request.config.getoption("--unpicklable", False):
                    output["lock"] = threading.Lock()
            yield

        def pytest_addoption(parser):
            parser.addoption("--unpicklable", action="store_true")

        @pytest.hookimpl(optionalhook=True)
        def pytest_testnodedown(node, error):
            output = dict(node.workeroutput)
            DOWN.append({"worker": node.gateway.id, "error": error, "ran": output.get("ran"),
                         "keys": sorted(output)})

        def pytest_sessionfinish(session):
            if not hasattr(session.config, "workerinput"):
                Path(__file__).with_name("down.json").write_text(json.dumps(DOWN))
    """,
    "test_many.py": """
        import pytest

        @pytest.mark.parametrize("i", range(6))
        def test_n(i):
            pass
    """,
}


@both
def test_workeroutput_reaches_pytest_testnodedown(suite, engine, tmp_path):
    run = suite(NODEDOWN, *parallel(engine))
    assert run.returncode == 0, run.output
    down = json.loads((tmp_path / "suite0" / "down.json").read_text())
    assert sorted(d["worker"] for d in down) == ["gw0", "gw1"]
    assert sum(d["ran"] or 0 for d in down) == 6
    for d in down:
        assert d["error"] is None
        assert {"exitstatus", "shouldfail", "shouldstop"} <= set(d["keys"])
    # The event Reporter hears the same hook: one worker_down per worker, no double.
    assert sorted(e["worker"] for e in run.of_type("worker_down")) == ["gw0", "gw1"]


def test_workeroutput_without_xdist_and_with_an_unpicklable_entry(suite, tmp_path):
    run = suite(NODEDOWN, "-p", "no:xdist", *parallel("fork"), "--unpicklable")
    assert run.returncode == 0, run.output
    down = json.loads((tmp_path / "suite0" / "down.json").read_text())
    assert sum(d["ran"] for d in down) == 6
    assert all("lock" not in d["keys"] and d["error"] is None for d in down)
    assert "workeroutput['lock'] not sent" in run.output
    assert len(run.of_type("worker_down")) == 2


def test_a_crashed_worker_is_down_with_its_error(suite, tmp_path):
    files = {**NODEDOWN, "test_crash.py": "import os\n\ndef test_dies():\n    os._exit(1)\n"}
    run = suite(files, *parallel("fork"))
    assert run.returncode == 1, run.output
    down = json.loads((tmp_path / "suite0" / "down.json").read_text())
    crashed = [d for d in down if d["error"]]
    assert len(crashed) == 1 and "crashed" in crashed[0]["error"]
    assert len(down) == 3  # the replacement too
    assert [e["crashed"] for e in run.of_type("worker_down")].count(True) == 1


# Coverage: import-time lines run in the controller (collection), the rest in the workers.
COVERED = {
    "pkg/__init__.py": "",
    "pkg/calc.py": """
        def add(a, b):
            return a + b

        def sub(a, b):
            if a > b:
                return a - b
            return -(b - a)

        def never():
            return 0

        def mul(a, b):
            total = 0
            for _ in range(b):
                total += a
            return total
    """,
    "test_a.py": """
        from pkg import calc

        def test_add():
            assert calc.add(1, 2) == 3

        def test_sub():
            assert calc.sub(3, 1) == 2
    """,
    "test_b.py": """
        from pkg import calc

        def test_mul():
            assert calc.mul(2, 3) == 6

        def test_sub_negative():
            assert calc.sub(1, 3) == -2
    """,
}
COV_ARGS = ("-p", "pytest_cov", "--cov=pkg", "--cov-branch", "--cov-report=term-missing")


def coverage_table(output: str) -> list[str]:
    return [line.split() for line in output.splitlines() if re.match(r"(pkg/|TOTAL)", line)]


def test_cov_totals_match_a_serial_run(suite, tmp_path):
    serial = suite(COVERED, *COV_ARGS)
    forked = suite(COVERED, *COV_ARGS, *parallel("fork"))
    assert serial.returncode == forked.returncode == 0, forked.output
    table = coverage_table(serial.output)
    assert table[-1][0] == "TOTAL" and table[-1][-1] == "94%", serial.output
    assert coverage_table(forked.output) == table, forked.output
    # Every worker's data file was combined into the run's one.
    assert [p.name for p in (tmp_path / "suite1").glob(".coverage*")] == [".coverage"]
