"""A loadgroup run's groups and the engine's warnings, from a real pytest run to API and page."""

from __future__ import annotations

import tempfile
from pathlib import Path

from runs.execution.environment import Environment
from runs.models import Run
from tests.base import BaseTestCase
from tests.factories import make_run
from tests.runner.conftest import run_pytest, write_suite
from tests.runner.test_runner_plugin import GROUPED, NO_GROUPS_FROM_WORKERS

ENGINES = {
    "xdist": ("-n", "2", "--dist", "loadgroup"),
    "fork": ("--ptd-workers", "2", "--ptd-dist", "loadgroup"),
}


def real_events(files: dict[str, str], *args: str) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        run = run_pytest(write_suite(Path(tmp), files), *args)
    assert run.returncode == 0, run.output
    return run.events


class GroupsAndWarningsTests(BaseTestCase):
    def stored(self, events: list[dict]) -> Run:
        run = make_run(self.suite, status=Run.Status.RUNNING)
        Environment().sink.handle_events(run.id, events)
        return run

    def test_each_result_says_its_group_with_a_plain_nodeid(self):
        self.login_member()
        for engine, args in ENGINES.items():
            with self.subTest(engine=engine):
                run = self.stored(real_events(GROUPED, *args))
                response = self.client.get(f"/api/runs/{run.id}/results?limit=100")
                assert response.status_code == 200, response.content
                items = response.json()["items"]
                db = [r for r in items if r["group"] == "db"]
                assert sorted(r["nodeid"] for r in db) == [
                    f"test_g2.py::test_db_{i}" for i in (1, 2, 3)
                ]
                assert len({r["worker"] for r in db}) == 1
                assert all(r["group"] == "" for r in items if r not in db)

    def test_engine_warnings_reach_the_run_page_and_the_api(self):
        self.login_member()
        events = real_events({**GROUPED, "conftest.py": NO_GROUPS_FROM_WORKERS}, *ENGINES["xdist"])
        run = self.stored(events)
        detail = self.client.get(f"/api/runs/{run.id}").json()
        [warning] = detail["warnings"]
        assert "did not report its tests' xdist_group marks" in warning
        page = self.client.get(run.get_absolute_url())
        self.assertContains(page, "did not report its tests&#x27; xdist_group marks")
