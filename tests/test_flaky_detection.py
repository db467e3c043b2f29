"""Flakiness rules on hand-made histories (runs/flaky/summary.py::record_run)."""

from unittest import mock

from django.db import connection
from django.test.utils import CaptureQueriesContext

from runner.pool import RunOutcome
from runs.execution.sink import finish_run
from runs.flaky import summary as flaky
from runs.models import Run, TestStat
from tests.base import BaseTestCase
from tests.factories import make_run

A = "tests/test_a.py::test_one"


def stat(suite, nodeid=A):
    return TestStat.objects.get(suite=suite, nodeid=nodeid)


class DetectionTests(BaseTestCase):
    def record(self, results, **fields):
        run = make_run(self.suite, results=results, **fields)
        flaky.record_run(run)
        return run

    def test_repeat_suffixes_fold_into_one_flaky_test(self):
        self.record(
            [
                (f"{A}[1-3]", "gw0", "passed", 0.1),
                (f"{A}[2-3]", "gw1", "failed", 0.1),
                (f"{A}[3-3]", "gw0", "passed", 0.1),
                ("tests/test_a.py::test_p[x-1-2]", "gw0", "passed", 0.1),
                ("tests/test_a.py::test_p[x-2-2]", "gw1", "passed", 0.1),
            ],
            status=Run.Status.FAILED,
        )
        s = stat(self.suite)
        self.assertEqual((s.runs_seen, s.runs_flaky, s.flip_count), (1, 1, 1))
        self.assertEqual(s.last_outcome, "flaky")
        self.assertAlmostEqual(s.fail_rate, 1 / 3, places=3)
        self.assertEqual(s.by_worker_id, {"gw0": [2, 0], "gw1": [1, 1]})
        self.assertIsNotNone(s.first_flaky_at)
        p = stat(self.suite, "tests/test_a.py::test_p[x]")
        self.assertEqual((p.flip_count, p.last_outcome), (0, "passed"))
        self.assertEqual(TestStat.objects.filter(suite=self.suite).count(), 2)

    def test_rerun_attempt_then_pass_is_flaky(self):
        self.record([(A, "gw0", "rerun", 0.1), (A, "gw0", "passed", 0.1)])
        self.assertEqual(stat(self.suite).flip_count, 1)

    def test_always_failing_is_failing_not_flaky(self):
        for _ in range(3):
            self.record(
                [(f"{A}[1-2]", "gw0", "failed", 0.1), (f"{A}[2-2]", "gw1", "failed", 0.1)],
                status=Run.Status.FAILED,
                commit="abc",
            )
        s = stat(self.suite)
        self.assertEqual((s.flip_count, s.runs_failed, s.runs_seen), (0, 3, 3))
        self.assertEqual(s.fail_rate, 1.0)

    def test_same_commit_pass_then_fail_is_a_flip(self):
        self.record([(A, "gw0", "passed", 0.1)], commit="c1")
        self.assertEqual(stat(self.suite).flip_count, 0)
        self.record([(A, "gw0", "failed", 0.1)], commit="c1", status=Run.Status.FAILED)
        s = stat(self.suite)
        self.assertEqual(s.flip_count, 1)
        self.assertEqual(s.runs_flaky, 0)  # not flaky inside one run
        self.assertEqual(s.commits, {"c1": "pf"})

    def test_different_commits_are_not_a_flip(self):
        self.record([(A, "gw0", "passed", 0.1)], commit="c1")
        self.record([(A, "gw0", "failed", 0.1)], commit="c2", status=Run.Status.FAILED)
        self.record([(A, "gw0", "failed", 0.1)], status=Run.Status.FAILED)  # no commit known
        self.assertEqual(stat(self.suite).flip_count, 0)

    def test_skipped_attempts_are_neither_pass_nor_fail(self):
        self.record([(A, "gw0", "skipped", 0.0), (A, "gw1", "failed", 0.1)])
        self.record([("tests/test_a.py::test_skip", "gw0", "skipped", 0.0)])
        s = stat(self.suite)
        self.assertEqual((s.flip_count, s.last_outcome), (0, "failed"))
        skip = stat(self.suite, "tests/test_a.py::test_skip")
        self.assertEqual((skip.runs_seen, skip.last_outcome, skip.fail_rate), (0, "skipped", None))

    def test_unfinished_runs_do_not_count_and_runs_count_once(self):
        run = self.record([(A, "gw0", "failed", 0.1)], status=Run.Status.ERROR)
        self.assertFalse(TestStat.objects.exists())
        run = self.record([(A, "gw0", "rerun", 0.1), (A, "gw0", "passed", 0.1)])
        flaky.record_run(run)
        self.assertEqual(stat(self.suite).runs_seen, 1)

    def test_parallel_only_flag_needs_a_clean_one_worker_run(self):
        self.record([(A, "gw0", "passed", 0.1), (A, "gw1", "failed", 0.1)], workers=4)
        s = stat(self.suite)
        self.assertTrue(s.failed_parallel)
        self.assertFalse(s.parallel_only)  # never ran with one worker
        # Failing 1 time in 2 in parallel: 5 clean serial attempts leave < 5 % to luck (0.5^5).
        self.assertEqual(s.serial_attempts_needed, 5)
        for clean in range(1, 6):
            self.record([(A, "gw0", "passed", 0.1)], workers=1)
            self.assertEqual(stat(self.suite).parallel_only, clean == 5)
        s = stat(self.suite)
        self.assertEqual(s.by_workers, {"4": [2, 1], "1": [5, 0]})
        self.record([(A, "gw0", "failed", 0.1)], workers=1, status=Run.Status.FAILED)
        s = stat(self.suite)
        self.assertFalse(s.parallel_only)
        self.assertTrue(s.failed_serial)

    def test_fail_rate_covers_the_last_k_runs_only(self):
        TestStat.RECENT_RUNS, old = 3, TestStat.RECENT_RUNS
        try:
            self.record([(A, "gw0", "failed", 0.1)], status=Run.Status.FAILED)
            for _ in range(3):
                self.record([(A, "gw0", "passed", 0.1)])
        finally:
            TestStat.RECENT_RUNS = old
        s = stat(self.suite)
        self.assertEqual(len(s.recent), 3)
        self.assertEqual(s.fail_rate, 0.0)
        self.assertEqual(s.runs_failed, 1)

    def test_rebuild_matches_incremental_and_keeps_quarantine(self):
        self.record([(A, "gw0", "passed", 0.1), (A, "gw1", "failed", 0.2)])
        self.record([(A, "gw0", "passed", 0.3)], commit="c1")
        self.record([(A, "gw0", "failed", 0.1)], commit="c1", status=Run.Status.FAILED)
        before = stat(self.suite).to_dict()
        TestStat.objects.filter(suite=self.suite).update(
            quarantined=True, quarantine_reason="known"
        )
        flaky.rebuild(self.suite)
        after = stat(self.suite)
        self.assertEqual({**before, "quarantined": True}, after.to_dict())
        self.assertEqual(after.flip_count, 2)
        self.assertEqual(after.quarantine_reason, "known")

    def test_update_is_bulk_whatever_the_number_of_tests(self):
        results = [(f"t.py::test_{i}", f"gw{i % 4}", "passed", 0.01) for i in range(600)]
        run = make_run(self.suite, results=results)
        with CaptureQueriesContext(connection) as ctx:
            flaky.record_run(run)
        selects = [q for q in ctx.captured_queries if q["sql"].startswith("SELECT")]
        writes = [q for q in ctx.captured_queries if q["sql"].startswith("INSERT")]
        self.assertEqual(len(selects), 2)  # the run's results, the suite's summaries
        self.assertTrue(all("ON CONFLICT" in q["sql"] for q in writes))  # batched upserts
        self.assertLess(len(writes), 600 // 20)
        self.assertEqual(TestStat.objects.filter(suite=self.suite).count(), 600)


class CatchUpTests(BaseTestCase):
    """Runs left unfolded (``history_pending``: run_suite's) fold oldest first, once each."""

    def pending(self, results, **fields):
        return make_run(self.suite, results=results, history_pending=True, **fields)

    def test_waiting_runs_fold_oldest_first_and_once(self):
        first = self.pending([(A, "gw0", "passed", 0.1)])
        second = self.pending([(A, "gw1", "failed", 0.2)], status=Run.Status.FAILED)
        self.assertFalse(TestStat.objects.filter(suite=self.suite).exists())
        self.assertEqual(flaky.pending_runs(self.suite), 2)

        self.assertEqual(flaky.catch_up(), 2)
        s = stat(self.suite)
        self.assertEqual([r[0] for r in s.recent], [first.id, second.id])
        self.assertEqual((s.last_run_id, s.last_outcome, s.runs_seen), (second.id, "failed", 2))
        self.assertEqual(flaky.pending_runs(self.suite), 0)

        self.assertEqual(flaky.catch_up(), 0)  # claimed: nothing folds twice
        self.assertEqual(stat(self.suite).runs_seen, 2)

    def test_a_run_finishing_here_folds_after_the_suites_waiting_ones(self):
        older = self.pending([(A, "gw0", "failed", 0.1)], status=Run.Status.FAILED)
        newer = make_run(self.suite, results=[(A, "gw0", "passed", 0.1)], status=Run.Status.RUNNING)
        finish_run(newer.id, RunOutcome(newer.id, 0, 1.0, None))
        s = stat(self.suite)
        self.assertEqual([r[0] for r in s.recent], [older.id, newer.id])
        self.assertEqual((s.last_run_id, s.last_outcome), (newer.id, "passed"))
        self.assertEqual(Run.objects.filter(history_pending=True).count(), 0)

    def test_a_run_finished_later_waits_and_only_complete_runs_wait(self):
        run = make_run(self.suite, results=[(A, "gw0", "passed", 0.1)], status=Run.Status.RUNNING)
        finish_run(run.id, RunOutcome(run.id, 0, 1.0, None), fold="later")
        self.assertTrue(Run.objects.get(pk=run.id).history_pending)
        self.assertFalse(TestStat.objects.filter(suite=self.suite).exists())
        cut = make_run(self.suite, results=[(A, "gw0", "passed", 0.1)], status=Run.Status.RUNNING)
        finish_run(cut.id, RunOutcome(cut.id, None, 1.0, "cancelled"), fold="later")
        self.assertFalse(Run.objects.get(pk=cut.id).history_pending)  # cancelled: never folds
        flaky.catch_up(self.suite.id)
        self.assertEqual(stat(self.suite).recent[0][0], run.id)

    def test_a_run_that_cannot_be_folded_is_said_once_and_let_go(self):
        broken = self.pending([(A, "gw0", "passed", 0.1)])
        after = self.pending([(A, "gw1", "failed", 0.1)], status=Run.Status.FAILED)
        real = flaky.aggregate

        def failing(tests):
            tests = list(tests)
            if tests and tests[0]["worker"] == "gw0":
                raise ValueError("a row the fold cannot read")
            return real(tests)

        with (
            self.assertLogs("runs.flaky.summary", "ERROR") as logs,
            mock.patch.object(flaky, "aggregate", failing),
        ):
            self.assertEqual(flaky.catch_up(), 1)
        self.assertIn(f"could not fold run {broken.id}", logs.output[0])
        self.assertEqual(flaky.pending_runs(self.suite), 0)  # not retried at every tick
        self.assertEqual(stat(self.suite).recent[0][0], after.id)  # the next one still folds
