"""`manage.py run_suite` as a user runs it: a real process, real pytest, exit codes, JSON."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from runner import warm
from tests.factories import SUMMARY_KEYS, write_suite
from tests.servers import ROOT, ServeProcess, isolated_env

SUITE = {
    "test_mixed.py": (
        "import pytest, time\n\n"
        "def test_ok_1(): time.sleep(0.05)\n"
        "def test_ok_2(): time.sleep(0.05)\n"
        "def test_fails(): assert 1 == 2, 'expected failure'\n"
        "@pytest.mark.skip(reason='not today')\n"
        "def test_skipped(): pass\n"
    ),
    "test_more.py": "def test_ok_3(): pass\ndef test_ok_4(): pass\n",
}


_envs: dict = {}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("run-suite-data")
    _envs[path] = isolated_env(path)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v0"],
        cwd=ROOT,
        env=_envs[path],
        check=True,
        timeout=120,
    )
    return path


def environment(data_dir) -> dict:
    return _envs[data_dir]


def run_suite(data_dir, *args, timeout=120, **env):
    return subprocess.run(
        [sys.executable, "manage.py", "run_suite", *map(str, args)],
        cwd=ROOT,
        env={**environment(data_dir), **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_failed_run_exit_1_with_json_summary(data_dir, tmp_path):
    suite = write_suite(tmp_path / "mixed", SUITE)
    out = run_suite(data_dir, suite, "--workers", "2", "--json")
    assert out.returncode == 1, out.stderr
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(summary) == SUMMARY_KEYS
    assert summary["status"] == "failed" and summary["workers"] == 2
    assert summary["tests"] == {
        "total": 6,
        "passed": 4,
        "failed": 1,
        "skipped": 1,
        "errors": 0,
        "flaky": 0,
    }
    assert sorted(w["id"] for w in summary["per_worker"]) == ["gw0", "gw1"]
    assert sum(w["tests"] for w in summary["per_worker"]) == 6
    assert summary["wall_seconds"] > 0 and summary["serial_seconds"] >= 0.1
    parts = summary["time_breakdown"]  # issue #17: where the time went
    total = sum(parts[k] for k in ("startup", "collection", "tests", "teardown"))
    assert total == pytest.approx(summary["wall_seconds"], abs=0.01) and "marks" not in parts
    assert "[6/6]" in out.stderr  # the progress line reached the end


def test_passing_selection_exit_0_and_measured_speedup(data_dir, tmp_path):
    suite = write_suite(tmp_path / "green", SUITE)
    one = run_suite(data_dir, suite, "--workers", "1", "--json", "-k", "ok")
    assert one.returncode == 0, one.stderr
    two = run_suite(data_dir, "--suite", "green", "--workers", "2", "--json", "-k", "ok")
    assert two.returncode == 0, two.stderr
    first = json.loads(one.stdout.splitlines()[-1])
    second = json.loads(two.stdout.splitlines()[-1])
    assert first["tests"]["passed"] == second["tests"]["passed"] == 4
    expected = first["wall_seconds"] / second["wall_seconds"]
    assert second["speedup_measured"] == pytest.approx(expected, rel=1e-3)


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "give a suite PATH or --suite NAME"),
        (["/no/such/dir"], "no such directory"),
        (["--suite", "missing"], "no suite named 'missing'"),
        (["{suite}", "--workers", "0"], "workers must be between 1 and 64"),
        (["{suite}", "--workers", "many"], "workers must be a whole number"),
        (["{suite}", "--repeat", "0"], "repeat must be between 1 and 1000"),
        (["{empty}"], "no test files"),
        (["{suite}", "--branch", "main\x1b[2J"], "branch must be one line of plain text"),
        (["{suite}", "--config", "nope"], "has no configuration 'nope'"),
    ],
)
def test_bad_usage_exit_2_and_nothing_stored(data_dir, tmp_path, args, message):
    suite = write_suite(tmp_path / "usage", SUITE)
    empty = write_suite(tmp_path / "empty", {"helpers.py": "X = 1\n"})
    args = [a.format(suite=suite, empty=empty) for a in args]
    out = run_suite(data_dir, *args)
    assert out.returncode == 2, out.stderr
    assert message in out.stderr
    assert "Traceback" not in out.stderr
    listing = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            "from runs.models import Suite; print(list(Suite.objects.values_list('name')))",
        ],
        cwd=ROOT,
        env=environment(data_dir),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "'usage'" not in listing.stdout and "'empty'" not in listing.stdout


def test_unknown_dist_is_usage_error(data_dir, tmp_path):
    out = run_suite(data_dir, write_suite(tmp_path / "dist", SUITE), "--dist", "random")
    assert out.returncode == 2 and "invalid choice" in out.stderr


def test_pytest_usage_error_exit_2_with_pytests_reason(data_dir, tmp_path):
    suite = write_suite(tmp_path / "bad-option", SUITE)
    out = run_suite(data_dir, suite, "--workers", "2", "--json", "--", "--no-such-option")
    assert out.returncode == 2, out.stderr  # bad usage: exit 2, as every command
    summary = json.loads(out.stdout.splitlines()[-1])
    assert summary["status"] == "error" and summary["tests"]["total"] == 0
    assert summary["speedup"] is None and summary["efficiency"] is None  # not 0.00x
    assert "pytest exited with code 4 (usage error)" in out.stderr
    assert "unrecognized arguments: --no-such-option" in out.stderr  # pytest's own words


def test_a_bad_k_expression_is_refused_before_any_run(data_dir, tmp_path):
    suite = write_suite(tmp_path / "bad-k", SUITE)
    out = run_suite(data_dir, suite, "--workers", "2", "-k", "and or (((")
    assert out.returncode == 2, out.stderr
    assert "keyword: not a pytest expression" in out.stderr and "column 1" in out.stderr


def test_timeout_exit_3(data_dir, tmp_path):
    """A run that hits its timeout is timed_out, says so once, and claims no speedup."""
    suite = write_suite(
        tmp_path / "slow",
        {
            "test_slow.py": "import time\n"
            "def test_quick(): time.sleep(0.2)\n"
            "def test_forever(): time.sleep(60)\n"
        },
    )
    out = run_suite(data_dir, suite, "--workers", "1", "--timeout", "2", "--json")
    assert out.returncode == 3, out.stderr
    summary = json.loads(out.stdout.splitlines()[-1])
    assert summary["status"] == "timed_out"
    assert summary["tests"]["passed"] == 1  # test_quick ran: figures could have been computed
    assert summary["speedup"] is None and summary["efficiency"] is None
    assert summary["speedup_measured"] is None and summary["wall_seconds"] >= 2
    assert summary["metrics_note"].startswith("timed out")
    assert "timed out:" in out.stderr  # the status as people read it
    assert out.stderr.count("imed out after 2 s") == 1, out.stderr  # one message


# Who started the run's pytest process (its parent's command line), written into the suite.
PARENT_PROBE = {
    "conftest.py": (
        "import os, pathlib\n\n"
        "def pytest_configure(config):\n"
        "    if not os.environ.get('PYTEST_XDIST_WORKER'):\n"
        "        parent = pathlib.Path(f'/proc/{os.getppid()}/cmdline').read_bytes()\n"
        "        pathlib.Path(__file__).with_name('parent.txt').write_bytes(parent)\n"
    ),
    "test_one.py": "def test_one(): pass\n",
}


def processes_in(directory: Path, timeout: float = 10.0) -> list[int]:
    """The processes working in ``directory``, once given ``timeout`` to be gone."""
    deadline = time.monotonic() + timeout
    while True:
        found = []
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit():
                with contextlib.suppress(OSError):
                    if os.readlink(proc / "cwd") == str(directory):
                        found.append(int(proc.name))
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


@pytest.mark.skipif(not warm.supported(), reason="warm starts need Linux pidfds")
def test_a_suite_path_runs_in_an_interpreter_warmed_while_django_started(data_dir, tmp_path):
    """runs.execution.prestart: `run_suite PATH` starts the suite's interpreter before Django,
    the run forks from it, and nothing of it outlives the command, used or not."""
    suite = write_suite(tmp_path / "warm", PARENT_PROBE)
    out = run_suite(data_dir, suite, "--workers", "1")
    assert out.returncode == 0, out.stderr
    assert b"_ptd_inrun.zygote" in (suite / "parent.txt").read_bytes()
    assert processes_in(suite) == []
    out = run_suite(data_dir, suite, "--workers", "1", PTD_WARM_START="0")
    assert out.returncode == 0, out.stderr
    assert b"manage.py" in (suite / "parent.txt").read_bytes()  # started cold, as asked
    empty = write_suite(tmp_path / "empty", {"helpers.py": "X = 1\n"})
    out = run_suite(data_dir, empty)
    assert out.returncode == 2 and "no test files" in out.stderr
    assert processes_in(empty, timeout=0) == []  # ended by the command before it left


@pytest.mark.skipif(not warm.supported(), reason="warm starts need Linux pidfds")
def test_an_interpreter_started_ahead_for_a_run_others_run_is_ended(tmp_path):
    """`run_suite PATH --machines K` (agents run it) or a run a server's dispatcher took: the
    command only follows it, and the zygote it started for it goes at once."""
    from runs.execution import prestart

    suite = write_suite(tmp_path / "elsewhere", PARENT_PROBE)
    prestart.start(["manage.py", "run_suite", str(suite), "--machines", "2"])
    zygote = prestart._zygote
    assert zygote is not None and zygote.proc.poll() is None
    prestart.discard()
    assert zygote.proc.poll() is not None and prestart.take() is None
    assert processes_in(suite) == []


def test_the_flakiness_summary_of_a_run_is_folded_by_a_serve_not_by_the_command(data_dir, tmp_path):
    """The CI job waits for run_suite to exit: the derived per-test summary (~0.2 s per 1,000
    tests) is left for a serving process, which folds what it finds waiting within seconds."""
    suite = write_suite(
        tmp_path / "folded",
        {"test_f.py": "def test_one(): pass\ndef test_two(): assert 0\n"},
    )
    out = run_suite(data_dir, suite, "--json")
    assert out.returncode == 1, out.stderr
    run_id = json.loads(out.stdout.strip().splitlines()[-1])["run_id"]
    server = ServeProcess(data_dir, env=environment(data_dir))
    probe = (
        f"from runs.models import Run, TestStat; r = Run.objects.get(pk={run_id}); "
        "print(r.history_pending, TestStat.objects.filter(suite=r.suite).count())"
    )
    assert server.manage("shell", "-v0", "-c", probe).split() == ["True", "0"]

    server.start()
    try:
        api = requests.Session()
        api.headers["Authorization"] = f"Bearer {server.create_token()}"
        suites = api.get(f"{server.url}/api/suites", timeout=10).json()
        suite_id = next(s["id"] for s in suites["items"] if s["name"] == "folded")
        deadline = time.monotonic() + 30
        while True:
            history = api.get(
                f"{server.url}/api/tests/{suite_id}/test_f.py::test_two/history", timeout=10
            )
            if history.status_code == 200 and history.json()["summary"] is not None:
                break
            assert time.monotonic() < deadline, history.text
            time.sleep(0.1)
        summary = history.json()["summary"]
        assert (summary["runs_seen"], summary["last_outcome"]) == (1, "failed")
        flaky = api.get(f"{server.url}/api/suites/{suite_id}/flaky", timeout=10).json()
        assert flaky["pending_runs"] == 0
    finally:
        server.stop()
