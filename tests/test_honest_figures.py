"""Honest figures (issue #17): no speedup for runs that did not run their tests to their end,
measured speedup only against a 1-worker run of the same selection and code, and reports that
never average across worker counts without saying so."""

from __future__ import annotations

import importlib

from runner.pool import RunOutcome
from runs.execution.sink import finish_run
from runs.execution.verdict import measured_speedup
from runs.models import ApiToken, Run
from tests.base import BaseTestCase
from tests.factories import make_run

ONE = [("t.py::a", "gw0", "passed", 1.0), ("t.py::b", "gw1", "passed", 1.0)]


class WithheldFiguresTests(BaseTestCase):
    def finish(self, outcome: RunOutcome, results=ONE) -> Run:
        run = make_run(self.suite, results=results, status=Run.Status.RUNNING, workers=2)
        return finish_run(run.id, RunOutcome(run.id, *outcome))

    def test_cancelled_timed_out_errored_and_empty_runs_store_no_speedup(self):
        cases = {
            "cancelled": (None, 2.0, "cancelled", "cancelled; the run's processes were ended"),
            "timed_out": (
                None,
                2.0,
                "timeout",
                "timed out after 2 s; the run's processes were ended",
            ),
            "error": (3, 2.0, None, "internal error"),
        }
        for status, outcome in cases.items():
            with self.subTest(status=status):
                run = self.finish(outcome)
                run.refresh_from_db()
                assert run.status == status
                assert run.speedup is None and run.efficiency is None
                assert run.speedup_measured is None
                assert run.serial_seconds == 2.0 and run.wall_seconds == 2.0  # facts stay
                assert run.metrics_note
        timed_out = Run.objects.get(status="timed_out")
        assert timed_out.message == "Timed out after 2 s; the run's processes were ended."
        empty = self.finish((5, 1.0, None, ""), results=[])
        assert empty.speedup is None and empty.metrics_note.startswith("no test ran")
        skipped = self.finish((0, 1.0, None, ""), results=[("t.py::s", "gw0", "skipped", 0.0)])
        assert skipped.status == "passed" and skipped.speedup is None
        whole = self.finish((0, 1.0, None, ""))
        assert whole.speedup == 2.0 and whole.efficiency == 1.0 and whole.metrics_note == ""

    def test_api_and_page_say_why(self):
        run = make_run(self.suite, results=ONE, status=Run.Status.CANCELLED, speedup=1.9,
                       efficiency=0.95, tests_total=2, tests_passed=2)  # fmt: skip
        _, token = ApiToken.create_for(self.member, "ci")
        data = self.client.get(f"/api/runs/{run.id}", HTTP_AUTHORIZATION=f"Bearer {token}").json()
        assert data["speedup"] is None and data["efficiency"] is None  # a row stored before
        assert data["metrics_note"].startswith("cancelled")
        self.login_member()
        html = self.client.get(f"/runs/{run.id}/").content.decode()
        assert 'id="metrics-note">No speedup, efficiency or measured speedup: cancelled' in html
        listed = self.client.get("/runs/").content.decode()
        assert 'title="no speedup: cancelled' in listed and "1.90×" not in listed
        passed = make_run(self.suite, results=ONE, speedup=1.5, tests_total=2, tests_passed=2)
        data = self.client.get(f"/api/runs/{passed.id}").json()
        assert data["speedup"] == 1.5 and data["metrics_note"] is None

    def test_timed_out_is_a_status_of_its_own_everywhere_statuses_are_listed(self):
        run = make_run(self.suite, results=ONE, status=Run.Status.TIMED_OUT)
        assert run.ci_exit_code == 3 and run.status_label == "timed out"
        self.login_member()
        listed = self.client.get("/runs/", {"status": "timed_out"}).content.decode()
        assert f"#{run.id}" in listed and '<option value="timed_out" selected>timed out' in listed
        assert ">timed out</span>" in self.client.get("/").content.decode()
        _, token = ApiToken.create_for(self.member, "ci")
        found = self.client.get(
            "/api/runs", {"status": "timed_out"}, HTTP_AUTHORIZATION=f"Bearer {token}"
        ).json()
        assert [r["id"] for r in found["items"]] == [run.id]


class NotesOfUnfinishedAndLoadRunsTests(BaseTestCase):
    def test_a_queued_or_running_run_has_no_note(self):
        # Review L2: the API said "still running" of a queued run; an active run says nothing.
        _, token = ApiToken.create_for(self.member, "ci")
        for status in (Run.Status.QUEUED, Run.Status.RUNNING):
            with self.subTest(status=status):
                run = make_run(self.suite, status=status)
                assert run.metrics_note == ""
                data = self.client.get(
                    f"/api/runs/{run.id}", HTTP_AUTHORIZATION=f"Bearer {token}"
                ).json()
                assert data["metrics_note"] is None and data["speedup"] is None

    def test_a_load_run_has_no_note_no_breakdown_and_lists_its_iterations(self):
        # Review L1: a load run is not a run of tests: no "no test ran", no time breakdown, and
        # the runs list shows its iterations, not "0/0 (45 not run)".
        from tests.test_load_pages import stored_load_run

        run = stored_load_run(self.suite)
        Run.objects.filter(pk=run.pk).update(
            collected=45, tests_total=0, tests_passed=0,
            time_breakdown={"startup": 0.5, "collection": 0.2, "tests": 0.3, "idle": 0.0,
                            "teardown": 3.5, "wall": 4.5},
        )  # fmt: skip
        run.refresh_from_db()
        assert run.metrics_note == "" and run.breakdown is None
        assert run.load_totals == {"iterations": 150, "failures": 3}
        _, token = ApiToken.create_for(self.member, "ci")
        data = self.client.get(f"/api/runs/{run.id}", HTTP_AUTHORIZATION=f"Bearer {token}").json()
        assert data["metrics_note"] is None and data["time_breakdown"] is None
        self.login_member()
        listed = self.client.get("/runs/").content.decode()
        assert '<td class="load-iterations">150 iterations <span class="bad">3 failed</span>' in (
            listed
        )
        assert "not run)" not in listed and "no speedup:" not in listed
        assert "Teardown" not in self.client.get(f"/runs/{run.id}/").content.decode()


class MeasuredSpeedupTests(BaseTestCase):
    def one_worker(self, commit: str, wall: float, **fields) -> Run:
        return make_run(self.suite, results=ONE, workers=1, commit=commit, wall_seconds=wall,
                        tests_total=2, tests_passed=2, **fields)  # fmt: skip

    def test_only_against_a_one_worker_run_of_the_same_code(self):
        self.one_worker("aaa", 8.0)
        self.one_worker("bbb", 6.0)  # later, other code
        self.one_worker("", 5.0, status=Run.Status.TIMED_OUT)  # not a whole run
        run = make_run(self.suite, results=ONE, workers=4, commit="aaa", wall_seconds=2.0,
                       tests_total=2, tests_passed=2)  # fmt: skip
        assert measured_speedup(run) == 4.0
        run.commit = "ccc"  # no 1-worker run of this code
        assert measured_speedup(run) is None
        run.commit = ""  # no commit: the latest 1-worker run of the selection
        assert measured_speedup(run) == round(6.0 / 2.0, 4)
        run.config_snapshot["keyword"] = "slow"  # another selection
        assert measured_speedup(run) is None
        baseline = self.one_worker("aaa", 7.0)  # a 1-worker run is the baseline, not a speedup
        assert measured_speedup(baseline) is None


class ReportByWorkersTests(BaseTestCase):
    def test_means_are_per_worker_count_and_the_overall_one_says_so(self):
        for workers, speedup in ((2, 1.8), (2, 1.6), (8, 3.0)):
            make_run(self.suite, results=ONE, workers=workers, speedup=speedup,
                     efficiency=speedup / workers, wall_seconds=1.0)  # fmt: skip
        self.login_member()
        page = self.client.get("/suites/demo/report/")
        groups = {g["workers"]: g for g in page.context["by_workers"]}
        assert set(groups) == {2, 8}
        assert groups[2]["runs"] == 2 and abs(groups[2]["mean_speedup"] - 1.7) < 1e-9
        assert groups[8]["runs"] == 1 and groups[8]["mean_efficiency"] == 3.0 / 8
        html = page.content.decode()
        assert "mean speedup, across 2 worker counts: see per count below" in html
        assert '<tr data-workers="8"><td>8</td><td>1</td>' in html


class MigrationTests(BaseTestCase):
    def test_old_timeouts_become_timed_out_and_cut_runs_lose_their_speedup(self):
        from django.apps import apps

        migration = importlib.import_module("runs.migrations.0012_compare_timed_out")
        figures = {"speedup": 1.5, "efficiency": 0.75, "tests_total": 2, "tests_passed": 2}
        old = make_run(self.suite, status=Run.Status.ERROR, message="Timed out after 5 s. x",
                       **figures)  # fmt: skip
        crashed = make_run(self.suite, status=Run.Status.ERROR, message="boom", **figures)
        cancelled = make_run(self.suite, status=Run.Status.CANCELLED, **figures)
        empty = make_run(self.suite, speedup=0.0, efficiency=0.0)
        whole = make_run(self.suite, **figures)
        migration.forwards(apps, None)
        for run in (old, crashed, cancelled, empty, whole):
            run.refresh_from_db()
        assert old.status == "timed_out" and crashed.status == "error"
        for run in (old, crashed, cancelled, empty):
            assert run.speedup is None and run.efficiency is None, run
        assert whole.speedup == 1.5 and whole.efficiency == 0.75
