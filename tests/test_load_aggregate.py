"""Merging load ticks from several processes into stored seconds, entries and errors; the
figures read back equal the raw samples' (percentiles within the histogram's 5 %)."""

from __future__ import annotations

import math
import random

from runner.loadstats import Entry
from runs.execution.environment import Environment
from runs.load import queries
from runs.load.aggregate import LAG, LoadAggregator
from runs.load.verdict import load_status
from runs.models import LoadEntry, LoadError, LoadSecond, LoadSummary, Run
from tests.base import BaseTestCase
from tests.factories import make_run

T0 = 1_800_000_000.0
TEST = "tests/test_api.py::test_item"
ENDPOINT = "GET /items/{id}"


def raw_percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[max(1, math.ceil(len(ordered) * q / 100)) - 1]


def tick(process, second, users, tests=None, requests=None):
    return {
        "type": "load_tick",
        "time": T0 + second + 1,
        "process": process,
        "second": second,
        "users": users,
        "tests": {k: v.to_dict() for k, v in (tests or {}).items()},
        "requests": {k: v.to_dict() for k, v in (requests or {}).items()},
    }


def entry(samples, failed=0):
    e = Entry()
    for i, ms in enumerate(samples):
        e.add(ms, failed=i < failed)
    return e


def load_run(suite, thresholds=()):
    run = make_run(suite, status=Run.Status.RUNNING)
    run.config_snapshot.update(mode="load", users=20, thresholds=list(thresholds))
    run.save(update_fields=["config_snapshot"])
    return run


class AggregateTests(BaseTestCase):
    def test_two_processes_merge_into_one_row_per_second_with_raw_figures(self):
        run = load_run(self.suite, ["p95<400ms", "errors<1%", f"{ENDPOINT}: p99<1ms"])
        rng = random.Random(16)
        start = {
            "type": "load_start",
            "time": T0,
            "users": 20,
            "spawn_rate": 10,
            "duration": 6,
            "iterations": None,
            "think_time": 0,
            "processes": 2,
            "tests": [TEST],
        }
        aggregator = LoadAggregator.for_run(run)
        aggregator.feed([start])
        every, per_second = [], {}
        batches = []
        for second in range(6):
            for process in ("p0", "p1"):
                samples = [rng.lognormvariate(5.3, 0.4) for _ in range(rng.randint(40, 60))]
                requests = [s * 0.9 for s in samples]
                every += samples
                per_second.setdefault(second, []).extend(samples)
                batches.append(
                    tick(
                        process,
                        second,
                        10,
                        {TEST: entry(samples, failed=1)},
                        {ENDPOINT: entry(requests)},
                    )
                )
        # p1's tick for second 0 arrives late, after second 0 was written (LAG passed).
        late = batches.pop(1)
        messages = []
        for i in range(0, len(batches), 3):
            messages += aggregator.feed(batches[i : i + 3])
        self.assertIn(0, aggregator.written)
        messages += aggregator.feed([late])
        messages += aggregator.feed([{"type": "load_stop", "time": T0 + 6.5, "reason": "duration"}])
        messages += aggregator.finish()

        rows = list(LoadSecond.objects.filter(run=run).order_by("second"))
        self.assertEqual([r.second for r in rows], list(range(6)))  # one row per second
        for row in rows:
            raw = per_second[row.second]
            self.assertEqual(row.iterations, len(raw))
            self.assertEqual(row.failures, 2)  # one failed per process
            self.assertEqual(row.users, 20)
            for q, got in ((50, row.p50_ms), (95, row.p95_ms), (99, row.p99_ms)):
                self.assertAlmostEqual(
                    got, raw_percentile(raw, q), delta=raw_percentile(raw, q) * 0.05
                )

        load = queries.load_dict(run)
        self.assertEqual(load["iterations"], len(every))
        self.assertEqual(load["failures"], 12)
        self.assertAlmostEqual(load["duration_seconds"], 6.5)
        self.assertAlmostEqual(load["rps"], len(every) / 6.5, places=2)
        self.assertAlmostEqual(load["min_ms"], min(every), places=3)
        self.assertAlmostEqual(load["max_ms"], max(every), places=3)
        self.assertAlmostEqual(load["mean_ms"], sum(every) / len(every), places=2)
        for q in (50, 90, 95, 99):
            raw = raw_percentile(every, q)
            self.assertAlmostEqual(load[f"p{q}_ms"], raw, delta=raw * 0.05)
        (test,) = load["tests"]
        self.assertEqual(test["nodeid"], TEST)
        self.assertEqual(test["iterations"], len(every))
        (endpoint,) = load["endpoints"]
        self.assertEqual((endpoint["method"], endpoint["path"]), ("GET", "/items/{id}"))
        self.assertEqual(endpoint["iterations"], len(every))
        errors_rate = 100 * 12 / len(every)
        self.assertEqual(
            load["thresholds"],
            [
                {"expr": "p95<400ms", "value": load["p95_ms"], "passed": load["p95_ms"] < 400},
                {"expr": "errors<1%", "value": round(errors_rate, 3), "passed": errors_rate < 1},
                {"expr": f"{ENDPOINT}: p99<1ms", "value": endpoint["p99_ms"], "passed": False},
            ],
        )
        # Compact: entries are one row each (total, test, endpoint), whatever the samples.
        self.assertEqual(LoadEntry.objects.filter(run=run).count(), 3)
        live = [m for m in messages if m["seconds"]]
        self.assertEqual(
            sorted(s["second"] for m in live for s in m["seconds"]), [0, 0, 1, 2, 3, 4, 5]
        )  # 0 again: merged late
        self.assertEqual(live[-1]["stats"]["total"]["iterations"], len(every))
        self.assertEqual(queries.series(run)[0]["rps"], rows[0].iterations)

        status, message = load_status(run, Run.Status.PASSED, "")
        self.assertEqual(status, Run.Status.FAILED)
        self.assertIn(f"{ENDPOINT}: p99<1ms (measured", message)

    def test_a_second_is_written_only_after_the_lag(self):
        run = load_run(self.suite)
        aggregator = LoadAggregator.for_run(run)
        aggregator.feed([tick("p0", 0, 1, {TEST: entry([10.0])})])
        aggregator.feed([tick("p0", LAG - 1, 1, {TEST: entry([10.0])})])
        self.assertFalse(LoadSecond.objects.filter(run=run).exists())
        aggregator.feed([tick("p0", LAG, 1, {TEST: entry([10.0])})])
        self.assertEqual(
            list(LoadSecond.objects.filter(run=run).values_list("second", flat=True)), [0]
        )

    def test_a_tick_a_second_late_loses_neither_the_users_nor_the_second(self):
        """A process's ticker starved of CPU past a whole second dates its tick a second later:
        the second it skipped had its users all the same (not 3 of 6), whether that second
        was stored already or not, and a second no process ticked for is in the series (not
        a hole the chart drew across)."""
        run = load_run(self.suite)
        aggregator = LoadAggregator.for_run(run)
        one = {TEST: entry([10.0])}
        aggregator.feed([tick("p0", 0, 3, one), tick("p1", 0, 3, one)])
        aggregator.feed([tick("p0", 1, 3, one)])  # p1 skips second 1...
        aggregator.feed([tick("p0", s, 3, one) for s in range(2, 2 + LAG + 1)])
        assert LoadSecond.objects.get(run=run, second=1).users == 3  # stored before it knew
        aggregator.feed([tick("p1", s, 3, one) for s in range(2, 2 + LAG + 1)])  # ...says so
        aggregator.feed([tick("p0", 2 + LAG + 2, 3, one), tick("p1", 2 + LAG + 2, 3, one)])
        aggregator.feed([{"type": "load_stop", "time": T0 + 2 * LAG, "reason": "duration"}])
        rows = list(LoadSecond.objects.filter(run=run).order_by("second"))
        assert [r.second for r in rows] == list(range(0, 2 + LAG + 3))  # both skipped 3 + LAG
        assert {r.users for r in rows} == {6}

    def test_a_clock_that_jumps_is_not_seconds_to_make_up(self):
        run = load_run(self.suite)
        aggregator = LoadAggregator.for_run(run)
        aggregator.feed([tick("p0", 0, 3, {TEST: entry([10.0])})])
        aggregator.feed([tick("p0", 200_000, 3, {TEST: entry([10.0])})])
        aggregator.feed([{"type": "load_stop", "time": T0 + 9, "reason": "duration"}])
        assert list(LoadSecond.objects.filter(run=run).values_list("second", flat=True)) == [
            0, 200_000
        ]  # fmt: skip

    def test_errors_are_grouped_with_their_first_traceback(self):
        run = load_run(self.suite)
        aggregator = LoadAggregator.for_run(run)
        boom = {
            "type": "load_error",
            "time": T0,
            "process": "p0",
            "name": ENDPOINT,
            "kind": "failure",
            "error": "HTTPError: 500 Server Error",
            "count": 3,
            "traceback": "first",
        }
        messages = aggregator.feed([boom, {**boom, "process": "p1", "traceback": "second"}])
        messages += aggregator.feed(
            [
                {**boom, "count": 4, "traceback": "third"},
                {**boom, "error": "ConnectionError: refused", "count": 1, "kind": "exception"},
            ]
        )
        rows = queries.errors_of(run)
        self.assertEqual(
            [(r["error"], r["count"], r["traceback"], r["kind"]) for r in rows],
            [
                ("HTTPError: 500 Server Error", 10, "first", "failure"),
                ("ConnectionError: refused", 1, "first", "exception"),
            ],
        )
        self.assertEqual(LoadError.objects.filter(run=run).count(), 2)
        self.assertEqual(messages[-1]["errors"][0]["count"], 10)

    def test_a_failed_abort_threshold_is_reported_once_and_fails_the_cancelled_run(self):
        run = load_run(self.suite, ["p95<50ms abort", "rps>100000 abort"])
        env = Environment()  # no pool: the abort is judged and said, nothing to stop here
        self.addCleanup(env.stop)
        sink = env.sink
        events = [tick("p0", s, 5, {TEST: entry([80.0] * 30)}) for s in range(LAG + 1)]
        sink.handle_load(run.pk, events)
        aggregator = sink.loads[run.pk]
        self.assertEqual(aggregator.abort["expr"], "p95<50ms abort")
        run.refresh_from_db()
        self.assertIn("Stopping early: the abort threshold p95<50ms abort failed", run.message)
        sink.finish_load(run.pk)
        self.assertEqual(LoadSummary.objects.get(run=run).aborted_by, "p95<50ms abort")
        status, message = load_status(run, Run.Status.CANCELLED, "Cancelled.")
        self.assertEqual(status, Run.Status.FAILED)
        self.assertTrue(message.startswith("Stopped early: the abort threshold p95<50ms abort"))
        # A user's cancel of a load run without an abort stays a cancel.
        other = load_run(self.suite, ["p95<50ms"])
        self.assertEqual(
            load_status(other, Run.Status.CANCELLED, "Cancelled."),
            (Run.Status.CANCELLED, "Cancelled."),
        )

    def test_thresholds_decide_a_completed_load_run_and_other_runs_are_untouched(self):
        run = load_run(self.suite, ["p95<500ms"])
        aggregator = LoadAggregator.for_run(run)
        aggregator.feed([tick("p0", 0, 1, {TEST: entry([10.0] * 5, failed=2)})])
        aggregator.finish()
        self.assertEqual(load_status(run, Run.Status.FAILED, ""), (Run.Status.PASSED, ""))
        plain = make_run(self.suite)
        self.assertEqual(load_status(plain, Run.Status.FAILED, "x"), (Run.Status.FAILED, "x"))
        self.assertIsNone(queries.load_dict(plain))


class PromptnessTests(BaseTestCase):
    def test_a_second_every_process_ticked_for_is_written_at_once(self):
        run = load_run(self.suite)
        aggregator = LoadAggregator.for_run(run)
        aggregator.feed([{"type": "load_start", "time": T0, "users": 2, "processes": 2}])
        aggregator.feed([tick("p0", 0, 1, {TEST: entry([10.0])})])
        assert not LoadSecond.objects.filter(run=run).exists()  # p1 has not spoken yet
        messages = aggregator.feed([tick("p1", 0, 1, {TEST: entry([20.0])})])
        row = LoadSecond.objects.get(run=run)
        assert (row.second, row.iterations, row.users) == (0, 2, 2)
        assert [s["second"] for s in messages[0]["seconds"]] == [0]


class WorkersTests(BaseTestCase):
    def test_a_load_runs_workers_are_its_load_processes(self):
        run = load_run(self.suite)
        env = Environment()
        self.addCleanup(env.stop)
        env.sink.handle_events(run.pk, [{"type": "session_start", "time": T0, "workers": 1}])
        env.sink.handle_events(
            run.pk, [{"type": "load_start", "time": T0, "users": 4, "processes": 3}]
        )
        run.refresh_from_db()
        self.assertEqual(run.workers, 3)


class StopReasonTests(BaseTestCase):
    def test_a_timed_out_load_run_says_timed_out_not_cancelled(self):
        run = load_run(self.suite)
        aggregator = LoadAggregator.for_run(run)
        aggregator.feed([tick("p0", 0, 1, {TEST: entry([10.0])})])
        aggregator.feed([{"type": "load_stop", "time": T0 + 1, "reason": "cancelled"}])
        aggregator.finish()
        self.assertEqual(queries.load_dict(run)["stop_reason"], "cancelled")
        Run.objects.filter(pk=run.pk).update(status=Run.Status.TIMED_OUT)
        run.refresh_from_db()
        self.assertEqual(queries.load_dict(run)["stop_reason"], "timed out")
