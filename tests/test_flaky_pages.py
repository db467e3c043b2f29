"""The suite's flaky list and a test's history page."""

from runs.flaky import summary as flaky
from runs.models import Run
from tests.base import BaseTestCase
from tests.factories import make_run

SHAKY = "tests/test_api.py::TestItems::test_put[a/b-1]"
STEADY = "tests/test_api.py::test_ok"
BROKEN = "tests/test_api.py::test_broken"


class FlakyPagesTests(BaseTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        for workers, shaky in ((4, "failed"), (4, "passed"), (1, "passed")):
            run = make_run(
                cls.suite,
                workers=workers,
                status=Run.Status.FAILED,
                results=[
                    (f"{SHAKY}[1-2]", "gw0", "passed", 0.2),
                    (f"{SHAKY}[2-2]", "gw1", shaky, 0.3),
                    (STEADY, "gw0", "passed", 0.1),
                    (BROKEN, "gw1", "failed", 0.1),
                ],
            )
            if shaky == "failed":
                run.results.filter(outcome="failed").update(
                    longrepr="E   AssertionError: lost the coin toss\n\nt.py:3: AssertionError"
                )
            flaky.record_run(run)

    def test_flaky_list_has_only_flaky_tests_and_sorts(self):
        self.login_member()
        page = self.client.get("/suites/demo/flaky/")
        self.assertEqual(page.status_code, 200)
        self.assertEqual([t.nodeid for t in page.context["tests"]], [SHAKY])
        self.assertEqual([t.nodeid for t in page.context["failing"]], [BROKEN])
        # 1 failure in 4 parallel attempts, 2 clean serial ones: too few to rule out luck.
        self.assertContains(page, "passed 2 of 11 1-worker attempts needed to tell")
        self.assertNotContains(page, "fails only in parallel")
        for sort in ("last_seen", "last_flip", "fail_rate", "flips", "nodeid", "bogus"):
            self.assertEqual(self.client.get(f"/suites/demo/flaky/?sort={sort}").status_code, 200)

    def test_test_page_shows_strip_workers_errors_and_parallel_flag(self):
        self.login_member()
        page = self.client.get(f"/suites/demo/tests/{SHAKY}")
        self.assertEqual(page.status_code, 200)
        self.assertEqual(
            [p["outcome"] for p in page.context["points"]], ["flaky", "passed", "passed"]
        )
        self.assertContains(page, 'data-outcome="flaky"')
        self.assertEqual(
            page.context["by_workers"],
            [
                {"key": "1", "attempts": 2, "failures": 0, "fail_rate": 0.0},
                {"key": "4", "attempts": 4, "failures": 1, "fail_rate": 0.25},
            ],
        )
        self.assertContains(page, "too few to rule out luck at its parallel fail rate (11 needed)")
        errors = page.context["errors"]
        self.assertEqual(errors[0]["message"], "AssertionError: lost the coin toss")
        self.assertContains(page, "history-points")  # chart data for test_history.js
        self.assertContains(page, 'id="rerun-form"')
        self.assertNotContains(page, 'id="quarantine-form"')  # members cannot quarantine
        self.login_staff()
        self.assertContains(self.client.get(f"/suites/demo/tests/{SHAKY}"), 'id="quarantine-form"')

    def test_enough_clean_one_worker_attempts_make_it_parallel_only(self):
        for _ in range(5):  # 2 + 10 clean serial attempts >= the 11 needed
            run = make_run(
                self.suite,
                workers=1,
                results=[
                    (f"{SHAKY}[1-2]", "gw0", "passed", 0.2),
                    (f"{SHAKY}[2-2]", "gw0", "passed", 0.2),
                ],
            )
            flaky.record_run(run)
        self.login_member()
        self.assertContains(self.client.get("/suites/demo/flaky/"), "fails only in parallel")
        page = self.client.get(f"/suites/demo/tests/{SHAKY}")
        self.assertContains(page, "never failed in its 12 1-worker attempts")

    def test_unknown_test_is_404_and_pages_need_a_login(self):
        self.login_member()
        self.assertEqual(self.client.get("/suites/demo/tests/nope.py::t").status_code, 404)
        self.client.logout()
        for url in ("/suites/demo/flaky/", f"/suites/demo/tests/{SHAKY}"):
            self.assertEqual(self.client.get(url).status_code, 302)

    def test_rebuild_is_staff_only(self):
        self.login_member()
        self.assertEqual(self.client.post("/suites/demo/flaky/rebuild/").status_code, 403)
        self.login_staff()
        self.assertEqual(self.client.post("/suites/demo/flaky/rebuild/").status_code, 302)
        page = self.client.get("/suites/demo/flaky/")
        self.assertEqual([t.nodeid for t in page.context["tests"]], [SHAKY])

    def test_suite_and_run_pages_link_to_flakiness(self):
        self.login_member()
        page = self.client.get("/suites/demo/")
        self.assertContains(page, "/suites/demo/flaky/")
        self.assertContains(page, "/suites/demo/report/")
        run = Run.objects.first()
        page = self.client.get(f"/runs/{run.id}/")
        self.assertContains(page, 'id="rerun-config"')
        self.assertContains(page, 'data-url="/suites/demo/rerun/"')


class MixedWithoutACommitTests(BaseTestCase):
    def test_a_test_that_failed_in_some_runs_of_unknown_code_is_mixed_and_says_why(self):
        """Failing 72 % over 13 runs without a commit read 'stable' with 0 flips."""
        node = "tests/test_api.py::test_sometimes"
        for outcome in ("failed", "passed", "failed"):
            run = make_run(
                self.suite, status=Run.Status.FAILED, results=[(node, "gw0", outcome, 0.1)]
            )
            flaky.record_run(run)
        self.login_member()
        page = self.client.get(f"/suites/demo/tests/{node}")
        self.assertContains(page, '<div class="value" data-figure="verdict">mixed</div>')
        self.assertContains(page, "It failed in 2 of 3 runs and passed in the others")
