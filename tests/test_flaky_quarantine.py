"""Quarantine: staff only, listed with who/when/why, and a run failing only on quarantined
tests passes (status, CI exit code, API) with a note."""

from runner.pool import RunOutcome
from runs.execution.sink import finish_run
from runs.flaky import summary as flaky
from runs.models import Run, TestStat
from tests.base import BaseTestCase
from tests.factories import make_run

Q = "tests/test_a.py::test_shaky"
OTHER = "tests/test_a.py::test_broken"


def finish(run, code=1):
    return finish_run(
        run.id, RunOutcome(run_id=run.id, returncode=code, wall_seconds=1.0, reason=None)
    )


class QuarantineStatusTests(BaseTestCase):
    def setUp(self):
        first = make_run(
            self.suite, results=[(Q, "gw0", "passed", 0.1), (OTHER, "gw0", "passed", 0.1)]
        )
        flaky.record_run(first)
        TestStat.objects.filter(nodeid=Q).update(quarantined=True, quarantine_reason="racy")

    def running(self, results):
        return make_run(self.suite, results=results, status=Run.Status.RUNNING)

    def test_only_quarantined_failures_pass_the_run(self):
        run = self.running(
            [
                (f"{Q}[1-2]", "gw0", "failed", 0.1),
                (f"{Q}[2-2]", "gw1", "passed", 0.1),
                (OTHER, "gw1", "passed", 0.1),
            ]
        )
        run = finish(run)
        self.assertEqual(run.status, Run.Status.PASSED)
        self.assertEqual(run.ci_exit_code, 0)
        self.assertIn("quarantined", run.message)
        self.assertEqual(run.tests_failed, 1)  # the failure is still shown
        self.login_member()
        data = self.client.get(f"/api/runs/{run.id}").json()
        self.assertEqual(data["status"], "passed")
        # and the summary still learns from the run
        self.assertEqual(TestStat.objects.get(nodeid=Q).flip_count, 1)

    def test_other_failures_still_fail_the_run(self):
        run = finish(self.running([(Q, "gw0", "failed", 0.1), (OTHER, "gw1", "error", 0.1)]))
        self.assertEqual(run.status, Run.Status.FAILED)
        self.assertEqual(run.ci_exit_code, 1)
        self.assertIn("1 of the 2 failing tests are quarantined", run.message)

    def test_rerun_attempts_do_not_count_as_failing(self):
        run = finish(self.running([(OTHER, "gw0", "rerun", 0.1), (OTHER, "gw0", "passed", 0.1)]), 0)
        self.assertEqual(run.status, Run.Status.PASSED)
        self.assertEqual(run.message, "")

    def test_engine_errors_are_not_hidden(self):
        run = finish(self.running([(Q, "gw0", "failed", 0.1)]), code=3)
        self.assertEqual(run.status, Run.Status.ERROR)
        self.assertEqual(run.ci_exit_code, 3)

    def test_released_test_fails_runs_again(self):
        TestStat.objects.filter(nodeid=Q).update(quarantined=False)
        run = finish(self.running([(Q, "gw0", "failed", 0.1)]))
        self.assertEqual(run.status, Run.Status.FAILED)


class QuarantineViewTests(BaseTestCase):
    def setUp(self):
        flaky.record_run(make_run(self.suite, results=[(Q, "gw0", "passed", 0.1)]))
        self.url = "/suites/demo/quarantine/set/"

    def test_staff_quarantines_with_a_reason_and_it_is_listed(self):
        self.login_staff()
        response = self.client.post(self.url, {"nodeid": Q, "reason": "shared tmp dir"})
        self.assertEqual(response.status_code, 302)
        stat = TestStat.objects.get(nodeid=Q)
        self.assertTrue(stat.quarantined)
        self.assertEqual(
            (stat.quarantined_by, stat.quarantine_reason), (self.staff, "shared tmp dir")
        )
        self.assertIsNotNone(stat.quarantined_at)
        page = self.client.get("/suites/demo/quarantine/")
        self.assertContains(page, Q)
        self.assertContains(page, "shared tmp dir")
        self.assertContains(page, "alice")
        self.client.post(self.url, {"nodeid": Q, "action": "release"})
        self.assertFalse(TestStat.objects.get(nodeid=Q).quarantined)

    def test_reason_is_required(self):
        self.login_staff()
        self.client.post(self.url, {"nodeid": Q, "reason": "  "})
        self.assertFalse(TestStat.objects.get(nodeid=Q).quarantined)

    def test_members_cannot_quarantine_and_outsiders_log_in(self):
        self.login_member()
        self.assertEqual(self.client.post(self.url, {"nodeid": Q, "reason": "x"}).status_code, 403)
        self.assertEqual(self.client.get("/suites/demo/quarantine/").status_code, 200)
        self.client.logout()
        response = self.client.post(self.url, {"nodeid": Q, "reason": "x"})
        self.assertEqual(response.status_code, 302)
        self.assertIn("/login", response["Location"])
        self.assertFalse(TestStat.objects.get(nodeid=Q).quarantined)

    def test_unknown_test_is_404_and_next_must_be_local(self):
        self.login_staff()
        self.assertEqual(
            self.client.post(self.url, {"nodeid": "nope", "reason": "x"}).status_code, 404
        )
        response = self.client.post(
            self.url, {"nodeid": Q, "reason": "x", "next": "https://evil.example/"}
        )
        self.assertNotIn("evil", response["Location"])
