"""Load runs end to end: a real suite whose session fixture starts a threaded HTTP service,
real load processes through the pool, real requests; the API's counts and percentiles are
checked against the timings the test itself recorded; thresholds fail a run and an abort
threshold ends it early; run_suite's exit codes."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time

import pytest
from django.test import Client

from runner import options
from runs.execution import launch
from runs.execution.environment import Environment, installed
from runs.models import LoadSecond, Run, RunConfig, Suite
from tests.load_suite import write_load_suite
from tests.servers import ROOT, isolated_env
from tests.test_dispatcher import wait_until

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif("mode" not in options.NAMES, reason="needs the load engine (#16)"),
]
ITEM = "test_service.py::test_item"


def raw_percentile(samples, q):
    ordered = sorted(samples)
    return ordered[max(1, math.ceil(len(ordered) * q / 100)) - 1]


@pytest.fixture
def load_suite(tmp_path):
    raw = tmp_path / "raw.txt"
    path = write_load_suite(tmp_path / "service")
    suite = Suite.objects.create(name="service", path=str(path), env={"RAW_TIMINGS": str(raw)})
    RunConfig.objects.create(suite=suite, name="default", is_default=True, workers=2)
    return suite, raw


@pytest.fixture
def viewer(django_user_model):
    client = Client()
    client.force_login(django_user_model.objects.create_user("vic", password="pw-vic-12345"))
    return client


def load_to_the_end(suite, timeout=120, **overrides) -> Run:
    with installed(Environment()) as env:
        env.start_dispatcher(max_concurrent=1, poll=0.1)
        run = launch.launch(suite, overrides={"mode": "load", **overrides})
        wait_until(lambda: not Run.objects.get(pk=run.pk).is_active, timeout=timeout)
    run.refresh_from_db()
    return run


def test_figures_equal_the_tests_own_timings(load_suite, viewer):
    suite, raw = load_suite
    run = load_to_the_end(
        suite,
        users=6,
        spawn_rate=100,
        duration=3,
        keyword="test_item",
        thresholds=["p95<5s", "errors<1%", "GET /items/{id}: p99<5s"],
    )
    assert run.status == Run.Status.PASSED, run.message
    data = viewer.get(f"/api/runs/{run.pk}").json()
    load = data["load"]
    samples = [float(line) for line in raw.read_text().split()]
    assert load["iterations"] == len(samples) > 30  # 6 users x ~3 s / 0.05 s, at least
    assert load["failures"] == 0
    (test,) = load["tests"]
    assert test["nodeid"] == ITEM and test["iterations"] == len(samples)
    (endpoint,) = load["endpoints"]
    assert (endpoint["method"], endpoint["path"]) == ("GET", "/items/{id}")
    assert endpoint["iterations"] == len(samples)  # one request per iteration
    # The engine times the whole iteration (the test's own timing is inside it): within the
    # histogram's 5 % plus the per-iteration overhead of running a test (a few ms when quiet;
    # threads waiting for the GIL on a loaded 2-core CI stretched p95 by 28 ms).
    for q in (50, 95):
        expected = raw_percentile(samples, q)
        assert expected * 0.95 <= load[f"p{q}_ms"] <= expected * 1.05 + 60, (q, load, expected)
        # The request is inside the test's own timing: never above it (but for the histogram's
        # 5 %), below it by what requests.get does around the request, GIL waits included
        # (12 ms at p95 on a loaded CI).
        request = endpoint[f"p{q}_ms"]
        assert expected * 0.95 - 60 <= request <= expected * 1.05 + 5, (q, endpoint, expected)
    # Asked 3 s; load_start to load_stop also holds the forks and the graceful stop, which
    # the engine bounds by its stop grace (10 s): a loaded machine takes more of it.
    assert 2.5 <= load["duration_seconds"] <= 3 + 10
    assert all(t["passed"] for t in load["thresholds"])
    series = viewer.get(f"/api/runs/{run.pk}/load/series").json()
    assert sum(s["iterations"] for s in series) == len(samples)
    assert LoadSecond.objects.filter(run=run).count() == len(series) <= 6
    assert max(s["users"] for s in series) == 6
    seconds = [s["second"] for s in series]
    assert seconds == list(range(seconds[0], seconds[-1] + 1))  # no second missing
    held = [s for s in series if 1 <= s["second"] < 3]  # after the spawn, before the stop
    assert held and all(s["users"] == 6 for s in held), series  # every user counted


def test_a_failing_endpoint_is_grouped_and_a_failed_threshold_fails_the_run(load_suite, viewer):
    suite, _ = load_suite
    run = load_to_the_end(suite, users=2, spawn_rate=100, duration=2, thresholds=["errors<1%"])
    assert run.status == Run.Status.FAILED
    assert "Failed thresholds: errors<1%" in run.message
    load = viewer.get(f"/api/runs/{run.pk}").json()["load"]
    broken = next(t for t in load["tests"] if t["nodeid"].endswith("test_broken"))
    assert broken["failures"] == broken["iterations"] > 0
    assert load["thresholds"][0]["passed"] is False
    page = viewer.get(f"/runs/{run.pk}/").content.decode()
    assert "500 Server Error" in page  # the grouped error, in the page's data
    from runs.models import LoadError

    errors = list(LoadError.objects.filter(run=run))
    assert any("500" in e.error and e.count >= broken["failures"] for e in errors), errors
    assert all(e.traceback for e in errors)


def test_an_abort_threshold_stops_the_run_early(load_suite):
    suite, _ = load_suite
    began = time.monotonic()
    run = load_to_the_end(
        suite,
        users=4,
        spawn_rate=100,
        duration=60,
        keyword="test_item",
        thresholds=["p95<1ms abort"],
    )
    assert time.monotonic() - began < 30  # not the 60 s asked for
    assert run.status == Run.Status.FAILED
    assert run.message.startswith("Stopped early: the abort threshold p95<1ms abort failed")
    assert run.load_summary.aborted_by == "p95<1ms abort"


def test_run_suite_load_exit_codes(load_suite, tmp_path):
    suite, raw = load_suite
    env = {**isolated_env(tmp_path / "data"), "RAW_TIMINGS": str(raw)}
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True, timeout=120
    )

    def run_suite(*args):
        return subprocess.run(
            [sys.executable, "manage.py", "run_suite", suite.path, "--workers", "2", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    bad = run_suite("--load", "--users", "2", "--duration", "1", "--threshold", "p97<1s")
    assert bad.returncode == 2 and "'p97<1s' is not a threshold" in bad.stderr
    failing = run_suite(
        "--load",
        "--users",
        "2",
        "--duration",
        "2",
        "-k",
        "test_item",
        "--threshold",
        "p50<1ms",
        "--json",
    )
    assert failing.returncode == 1, failing.stderr
    summary = json.loads(failing.stdout.strip().splitlines()[-1])
    assert summary["status"] == "failed" and summary["load"]["iterations"] > 0
    assert "FAIL p50<1ms" in failing.stderr


def test_iterations_limit_and_cancel_keep_their_figures(load_suite, viewer):
    suite, _ = load_suite
    run = load_to_the_end(suite, users=3, spawn_rate=100, iterations=4, keyword="test_item")
    assert run.status == Run.Status.PASSED, run.message
    load = viewer.get(f"/api/runs/{run.pk}").json()["load"]
    assert load["iterations"] == 12 and load["stop_reason"] == "iterations"  # 3 users x 4

    with installed(Environment()) as env:
        env.start_dispatcher(max_concurrent=1, poll=0.1)
        run = launch.launch(
            suite,
            overrides={
                "mode": "load",
                "users": 3,
                "spawn_rate": 100,
                "duration": 120,
                "keyword": "test_item",
            },
        )
        wait_until(lambda: LoadSecond.objects.filter(run=run).count() >= 2, timeout=60)
        began = time.monotonic()
        assert env.cancel(Run.objects.get(pk=run.pk))
        wait_until(lambda: not Run.objects.get(pk=run.pk).is_active, timeout=30)
        stopped_in = time.monotonic() - began
    run.refresh_from_db()
    # Stopped by its own graceful stop, not by the pool's SIGKILL at LOAD_GRACE (15 s): were
    # it killed, the run's log holds every process's stacks (the pool asks for them first).
    log = launch.log_path(run).read_text(errors="replace")
    assert run.status == Run.Status.CANCELLED and stopped_in < 15, (stopped_in, log[-20000:])
    load = viewer.get(f"/api/runs/{run.pk}").json()["load"]
    assert load["iterations"] > 0 and load["stop_reason"] == "cancelled"
