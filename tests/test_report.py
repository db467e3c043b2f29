"""The QA lead's report page and its CSV exports."""

import csv
import io
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from runs.flaky import summary as flaky
from runs.models import Run, TestStat
from tests.base import BaseTestCase
from tests.factories import make_run

SHAKY = "tests/test_a.py::test_shaky"
SLOW = "tests/test_a.py::test_slow"


class ReportTests(BaseTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        cls.old = make_run(cls.suite, results=[(SLOW, "gw0", "passed", 9.0)], balance=3.0,
                           created_at=timezone.now() - timedelta(days=90))  # fmt: skip
        flaky.record_run(cls.old)
        cls.r1 = make_run(
            cls.suite, status=Run.Status.FAILED, balance=1.8, efficiency=0.6, speedup=2.4,
            flakiness_rate=0.5, tests_total=2, tests_passed=1, tests_failed=1, wall_seconds=4.0,
            results=[
                (f"{SHAKY}[1-2]", "gw0", "failed", 0.1),
                (f"{SHAKY}[2-2]", "gw1", "passed", 0.1),
                (SLOW, "gw1", "passed", 2.0),
            ],
            message="=cmd|' /C calc'!A0",
        )  # fmt: skip
        cls.r2 = make_run(
            cls.suite, balance=1.1, efficiency=0.9, speedup=3.6, flakiness_rate=0.0,
            tests_total=2, tests_passed=2, wall_seconds=2.0,
            results=[(SHAKY, "gw0", "passed", 0.1), (SLOW, "gw1", "passed", 3.0)],
        )  # fmt: skip
        for run in (cls.r1, cls.r2):
            flaky.record_run(run)
        TestStat.objects.filter(nodeid=SHAKY).update(
            quarantined=True, quarantined_by=cls.staff, quarantine_reason="racy"
        )

    def test_report_page_summary_tables_and_print_css(self):
        self.login_member()
        page = self.client.get("/suites/demo/report/")
        self.assertEqual(page.status_code, 200)
        figures = page.context["figures"]
        self.assertEqual((figures["runs"], figures["passed_runs"]), (2, 1))  # old run excluded
        self.assertAlmostEqual(figures["efficiency"], 0.75)
        self.assertAlmostEqual(figures["test_pass_rate"], 0.75)
        self.assertEqual(figures["on_target"], 1)
        self.assertEqual([t.nodeid for t in page.context["flaky"]], [SHAKY])
        slowest = page.context["slowest"]
        self.assertEqual(slowest[0]["nodeid"], SLOW)
        self.assertAlmostEqual(slowest[0]["mean"], 2.5)  # the 9 s run is outside the period
        self.assertEqual([r.id for r in page.context["worst_balanced"]], [self.r1.id, self.r2.id])
        self.assertEqual(len(page.context["points"]), 2)
        # The print layout lives in the stylesheet (the CSP allows no inline <style>).
        self.assertContains(page, "css/ptd.css")
        css = (Path(settings.BASE_DIR) / "static" / "css" / "ptd.css").read_text()
        self.assertIn("@page { size: A4", css)
        self.assertContains(page, "report-points")

    def test_period_is_chosen_by_dates(self):
        self.login_member()
        day = (timezone.localdate() - timedelta(days=90)).isoformat()
        page = self.client.get(f"/suites/demo/report/?since={day}&until={day}")
        self.assertEqual(page.context["figures"]["runs"], 1)
        self.assertEqual(page.context["slowest"][0]["mean"], 9.0)
        self.assertEqual(self.client.get("/suites/demo/report/?since=bogus").status_code, 200)

    def test_runs_csv(self):
        self.login_member()
        response = self.client.get("/suites/demo/report/runs.csv")
        self.assertEqual(response["Content-Type"], "text/csv; charset=utf-8")
        self.assertIn("attachment", response["Content-Disposition"])
        rows = list(csv.DictReader(io.StringIO(response.content.decode())))
        self.assertEqual([int(r["run_id"]) for r in rows], [self.r1.id, self.r2.id])
        self.assertEqual(rows[0]["status"], "failed")
        self.assertEqual(float(rows[0]["balance"]), 1.8)
        self.assertTrue(rows[0]["message"].startswith("'="))  # no formula injection

    def test_tests_csv(self):
        self.login_member()
        response = self.client.get("/suites/demo/report/tests.csv")
        rows = {r["nodeid"]: r for r in csv.DictReader(io.StringIO(response.content.decode()))}
        self.assertEqual(set(rows), {SHAKY, SLOW})
        shaky = rows[SHAKY]
        self.assertEqual((shaky["flip_count"], shaky["runs_seen"]), ("1", "2"))
        self.assertEqual((shaky["quarantined"], shaky["quarantined_by"]), ("yes", "alice"))
        self.assertEqual(rows[SLOW]["flip_count"], "0")
        flaky_only = self.client.get("/suites/demo/report/tests.csv?flaky=1").content.decode()
        self.assertNotIn(SLOW, flaky_only)

    def test_login_required(self):
        for url in ("/suites/demo/report/", "/suites/demo/report/runs.csv"):
            self.assertEqual(self.client.get(url).status_code, 302)
