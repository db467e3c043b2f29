"""Sweeps and time breakdowns on real runs (real pytest processes, a real dispatcher)."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from runs.execution import launch
from runs.execution.environment import Environment, installed
from runs.models import Run, RunConfig, Suite
from tests.factories import write_suite
from tests.test_dispatcher import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

# Eight 0.3 s tests: sleep-bound, so more workers help even on a 2-core machine.
SWEPT = {f"test_s{i}.py": "import time\n\ndef test_x(): time.sleep(0.3)\n" for i in range(8)}


@pytest.fixture
def dispatcher():
    """`serve`'s dispatcher with room for two runs at once: sweep steps must still take turns."""
    with installed(Environment()) as env:
        yield env.start_dispatcher(max_concurrent=2, poll=0.1)


@pytest.fixture
def staff():
    user = get_user_model().objects.create_user("lead", password="x", is_staff=True)
    client = Client()
    client.force_login(user)
    return client


def test_sweep_runs_one_after_another_and_gives_points_and_a_recommendation(
    tmp_path, dispatcher, staff
):
    suite = Suite.objects.create(name="swept", path=str(write_suite(tmp_path / "s", SWEPT)))
    RunConfig.objects.create(suite=suite, name="default", is_default=True, engine="fork")
    answer = staff.post(
        f"/api/suites/{suite.id}/sweep", {"workers": [4, 1, 2]}, content_type="application/json"
    )
    assert answer.status_code == 201, answer.content
    body = answer.json()
    assert [r["workers"] for r in body["runs"]] == [1, 2, 4]  # ascending: 1 worker first
    ids = [r["id"] for r in body["runs"]]
    wait_until(lambda: not Run.objects.filter(id__in=ids, status__in=Run.ACTIVE).exists(), 120)
    runs = list(Run.objects.filter(id__in=ids).order_by("id"))
    assert [r.status for r in runs] == ["passed"] * 3
    # Every step waits for a warm interpreter before it starts: the first pays no cold start.
    assert all(launch.build_spec(r).warm_first for r in runs)
    assert not launch.build_spec(Run.objects.create(suite=suite)).warm_first
    for earlier, later in zip(runs, runs[1:], strict=False):
        assert later.started_at >= earlier.finished_at, "two steps of a sweep ran at once"
    # Against the sweep's own 1-worker step (how much faster 4 workers are is the machine's
    # business: 8 x 0.3 s of sleeps gave 1.06 on a loaded CI, ~2.5 when quiet).
    assert runs[-1].speedup_measured == round(runs[0].wall_seconds / runs[-1].wall_seconds, 4)
    data = staff.get(f"/api/suites/{suite.id}/scaling").json()
    assert [p["workers"] for p in data["points"]] == [1, 2, 4]
    assert all(p["from_sweep"] for p in data["points"])
    assert data["points"][0]["speedup"] == 1.0
    walls = [p["wall_seconds"] for p in data["points"]]
    assert data["points"][2]["speedup"] == pytest.approx(walls[0] / walls[2], abs=0.01)
    # The page's rule, on the measured points (how fast 2 and 4 workers are depends on the
    # machine's load): the smallest N within 10 % of the best wall among efficiency >= 0.75.
    eligible = [p for p in data["points"] if p["efficiency"] >= 0.75]
    best = min(p["wall_seconds"] for p in eligible)
    expected = min(p["workers"] for p in eligible if p["wall_seconds"] <= 1.1 * best)
    assert data["recommended_workers"] == expected and data["reason"]
    assert data["serial_fraction"] is not None and 0 <= data["serial_fraction"] <= 1
    page = staff.get(f"/suites/{suite.name}/scaling/")
    assert page.status_code == 200
    assert f'Recommended: <span id="recommended-workers">{data["recommended_workers"]}' in (
        page.content.decode()
    )


def test_sweep_refusals(tmp_path, staff):
    suite = Suite.objects.create(name="refused", path=str(write_suite(tmp_path / "r", SWEPT)))
    for workers, detail in (
        ([], "workers"),
        ([0, 2], "1.."),
        ([True], "valid integer"),
        (list(range(1, 11)), "at most 8"),
    ):
        answer = staff.post(
            f"/api/suites/{suite.id}/sweep", {"workers": workers}, content_type="application/json"
        )
        assert answer.status_code in (400, 422) and detail in json.dumps(answer.json()), workers
    assert not Run.objects.exists()
    assert (
        staff.post("/api/suites/999/sweep", {}, content_type="application/json").status_code == 404
    )
    form = staff.post(f"/suites/{suite.name}/sweep/", {"workers": "1, two"})
    assert form.status_code == 400 and "whole numbers" in form.content.decode()
    RunConfig.objects.create(suite=suite, name="load", mode="load", users=2, duration=3)
    answer = staff.post(
        f"/api/suites/{suite.id}/sweep",
        {"workers": [1, 2], "config": "load"},
        content_type="application/json",
    )
    assert answer.status_code == 400 and "tests mode" in answer.json()["detail"]
    assert not Run.objects.exists()


# Phases this suite controls: start-up (the rootdir conftest.py is imported before the
# session starts), collection (a test module's import), one long test, teardown (a
# controller-side pytest_sessionfinish after the last test).
PHASES = {
    "conftest.py": (
        "import time\n\ntime.sleep(1.0)\n\n"
        "def pytest_sessionfinish(session):\n"
        "    if not hasattr(session.config, 'workerinput'):\n"
        "        time.sleep(1.0)\n"
    ),
    "test_phases.py": (
        "import time\n\ntime.sleep(1.0)\n\n"
        "def test_long(): time.sleep(2.0)\n"
        "def test_short_1(): time.sleep(0.1)\n"
        "def test_short_2(): time.sleep(0.1)\n"
    ),
}


@pytest.mark.parametrize("engine", ["fork", "xdist"])
def test_time_breakdown_of_a_run_whose_phases_we_control(tmp_path, dispatcher, staff, engine):
    suite = Suite.objects.create(name=f"phases-{engine}", path=str(write_suite(tmp_path, PHASES)))
    config = RunConfig.objects.create(suite=suite, name="d", is_default=True, workers=2,
                                      engine=engine)  # fmt: skip
    run = launch.launch(config, trigger="api")
    wait_until(lambda: Run.objects.get(pk=run.pk).status not in Run.ACTIVE, 120)
    data = staff.get(f"/api/runs/{run.id}").json()
    assert data["status"] == "passed"
    b = data["time_breakdown"]
    # Tolerances: each part holds at least its sleep (minus 0.1 s of clock granularity) and
    # at most its sleep plus a start-up's worth of slack on a loaded 2-core machine (4 s).
    total = b["startup"] + b["collection"] + b["tests"] + b["teardown"]
    assert total == pytest.approx(data["wall_seconds"], abs=0.01)
    assert 0.9 <= b["startup"] <= 1.0 + 4.0 + (2.0 if engine == "xdist" else 0)
    # xdist: every worker collects (its start-up, the conftest's 1 s and the module's 1 s).
    assert (1.9 if engine == "xdist" else 0.9) <= b["collection"] <= 2.0 + 4.0
    assert 1.9 <= b["tests"] <= 2.0 + 4.0
    assert 0.9 <= b["teardown"] <= 1.0 + 4.0
    assert b["longest_test"]["nodeid"] == "test_phases.py::test_long"
    assert 1.6 <= b["tail"] <= b["tests"]  # the other worker had nothing left meanwhile
    assert 1.6 <= b["idle"] <= 2 * b["tests"]
    stdout = staff.get(f"/runs/{run.id}/").content.decode()
    assert 'id="time-breakdown"' in stdout and 'data-part="teardown"' in stdout


def test_an_ingested_run_has_its_breakdown_too(staff):
    """Outside runs finish through the same code: their events carry the same moments."""
    from runs.models import ApiToken
    from tests.factories import DEMO_DIR, test_event

    Suite.objects.create(name="demo", path=str(DEMO_DIR))
    user = get_user_model().objects.get(username="lead")
    _, token = ApiToken.create_for(user, "ci")
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    run_id = staff.post("/api/ingest/runs", {"suite": "demo", "workers": 2},
                        content_type="application/json", **auth).json()["id"]  # fmt: skip
    started = Run.objects.get(pk=run_id).started_at.timestamp()
    events = [
        {"type": "session_start", "workers": 2, "pid": 1, "time": started + 0.5},
        {"type": "collected", "count": 2, "time": started + 1.0},
        test_event("t.py::a", worker="gw0", start=started + 1.5, duration=1.0),
        test_event("t.py::b", worker="gw1", start=started + 1.5, duration=0.5),
    ]
    staff.post(f"/api/ingest/runs/{run_id}/events", {"events": events},
               content_type="application/json", **auth)  # fmt: skip
    staff.post(f"/api/ingest/runs/{run_id}/finish", {"exitstatus": 0, "wall_seconds": 3.0},
               content_type="application/json", **auth)  # fmt: skip
    b = staff.get(f"/api/runs/{run_id}").json()["time_breakdown"]
    assert (b["startup"], b["collection"], b["tests"], b["teardown"]) == (1.0, 0.5, 1.0, 0.5)
    assert b["idle"] == 0.5


def test_latest_sweep_table_is_of_the_chosen_configuration(staff):
    """Review L5: the "Latest sweep" table showed the suite's latest sweep of any configuration."""
    from tests.factories import DEMO_DIR, make_run

    suite = Suite.objects.create(name="demo", path=str(DEMO_DIR))
    RunConfig.objects.create(suite=suite, name="default", is_default=True)
    RunConfig.objects.create(suite=suite, name="fast", keyword="fast")
    ids = {}
    for name, sweep_id in (("default", "s-default"), ("fast", "s-fast")):
        run = make_run(suite, workers=2)
        run.config_snapshot.update(name=name, sweep={"id": sweep_id, "step": 1, "steps": 1})
        run.save(update_fields=["config_snapshot"])
        ids[name] = run.id
    for name in ("default", "fast"):
        page = staff.get("/suites/demo/scaling/", {"config": name})
        assert [r.id for r in page.context["sweep_runs"]] == [ids[name]], name
