"""What ran: a run of a suite, its per-worker figures and its test results.

Models carry their own behaviour (validation, `to_dict()`); runs.execution orchestrates them.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone

from runs.models.suites import ENGINES, PYTEST_USAGE_ERROR, RunConfig, Suite, iso


class RunQuerySet(models.QuerySet):
    def whole(self) -> RunQuerySet:
        """Without the runs of one test made to probe its flakiness (a test page's Rerun xK)
        and without load runs (their figures are load's, with a trend of their own): trends
        and reports are about the suite's runs of its tests."""
        return self.exclude(config_snapshot__has_key="rerun_of").tests_runs()

    def tests_runs(self) -> RunQuerySet:
        """Runs that ran the tests once each: not load runs, which loop them (issue #16)."""
        # Not exclude(mode="load"): on a JSON key it also drops the runs made before modes
        # existed (no key at all).
        return self.filter(
            models.Q(config_snapshot__mode__isnull=True) | ~models.Q(config_snapshot__mode="load")
        )


class Run(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        PASSED = "passed"
        FAILED = "failed"
        ERROR = "error"
        CANCELLED = "cancelled"
        TIMED_OUT = "timed_out", "timed out"
        INTERRUPTED = "interrupted"

    class Trigger(models.TextChoices):
        UI = "ui"
        API = "api"
        CLI = "cli"
        EXTERNAL = "external"

    ACTIVE = (Status.QUEUED, Status.RUNNING)
    # Ran to its end: its results describe the whole selection (trends, flakiness, history).
    COMPLETE = (Status.PASSED, Status.FAILED)
    # Why a run's speedup, efficiency and measured speedup are withheld (null): they would
    # describe a part of the run, or nothing (README: Metrics). Shown on the page and in the API.
    FIGURES_WITHHELD = {
        Status.CANCELLED: "cancelled: the figures of part of a run are not its speedup",
        Status.TIMED_OUT: "timed out: the figures of part of a run are not its speedup",
        Status.ERROR: "the run failed (error): its figures do not describe the suite",
        Status.INTERRUPTED: "interrupted: the figures of part of a run are not its speedup",
    }

    suite = models.ForeignKey(Suite, on_delete=models.CASCADE, related_name="runs")
    config = models.ForeignKey(RunConfig, null=True, blank=True, on_delete=models.SET_NULL)
    config_snapshot = models.JSONField(default=dict)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED)
    trigger = models.CharField(max_length=10, choices=Trigger.choices, default=Trigger.UI)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    commit = models.CharField(max_length=64, blank=True)
    branch = models.CharField(max_length=200, blank=True)
    ci_url = models.URLField(max_length=1000, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Which process owns a running run, so a restarted server can tell it was interrupted.
    runner_host = models.CharField(max_length=200, blank=True)
    runner_pid = models.IntegerField(null=True, blank=True)
    exit_code = models.IntegerField(null=True, blank=True)
    message = models.TextField(blank=True)
    # Output left out of the middle of the run's log (settings.PTD_MAX_LOG_BYTES).
    log_bytes_cut = models.PositiveBigIntegerField(default=0)
    # One line per "warning" event: where the engine works in a degraded way (e.g. a pytest
    # or plugin version lacking what it uses), shown on the run's page.
    warnings = models.TextField(blank=True)
    # Metrics (runner.metrics.summarize), stored when the run finishes.
    workers = models.PositiveSmallIntegerField(default=0)
    collected = models.PositiveIntegerField(null=True, blank=True)
    wall_seconds = models.FloatField(null=True, blank=True)
    serial_seconds = models.FloatField(null=True, blank=True)
    speedup = models.FloatField(null=True, blank=True)
    speedup_measured = models.FloatField(null=True, blank=True)
    efficiency = models.FloatField(null=True, blank=True)
    balance = models.FloatField(null=True, blank=True)
    flakiness_rate = models.FloatField(null=True, blank=True)
    tests_total = models.PositiveIntegerField(default=0)
    tests_passed = models.PositiveIntegerField(default=0)
    tests_failed = models.PositiveIntegerField(default=0)
    tests_skipped = models.PositiveIntegerField(default=0)
    tests_errors = models.PositiveIntegerField(default=0)
    tests_flaky = models.PositiveIntegerField(default=0)
    # Ingestion: how many of the plugin's numbered events are stored, so a batch sent again
    # (an answer lost to a timeout, then the spool uploaded) is not stored twice.
    events_received = models.PositiveBigIntegerField(default=0)
    # Live page: the number of the last websocket message published for this run (runs.live),
    # so a client that missed one knows it and asks for a snapshot.
    live_seq = models.PositiveBigIntegerField(default=0)
    # Where the wall time went (runs.insight.breakdown), computed when the run finishes. While
    # it runs, {"marks": {...}}: the moments its events carried (session start, collection).
    time_breakdown = models.JSONField(null=True, blank=True)
    # Finished complete but not folded into the flakiness summary yet (runs.flaky.summary:
    # a one-shot run_suite leaves that to a serving process, which catches up).
    history_pending = models.BooleanField(default=False)

    objects = RunQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # A suite's runs by date: suite page, trends, speedup_measured look-up.
            models.Index(fields=["suite", "-created_at"], name="run_suite_created"),
            # The dispatcher's "oldest queued run" and the interrupted-runs sweep.
            models.Index(fields=["status", "created_at"], name="run_status_created"),
            # The runs list, newest first.
            models.Index(fields=["-created_at"], name="run_created"),
            # The runs waiting to be folded into the flakiness summary (few, or none).
            models.Index(
                fields=["suite", "created_at"],
                condition=models.Q(history_pending=True),
                name="run_history_pending",
            ),
        ]

    def __str__(self) -> str:
        return f"Run {self.id} of {self.suite.name} ({self.status})"

    def get_absolute_url(self) -> str:
        return reverse("run", args=[self.id])

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE

    @property
    def is_complete(self) -> bool:
        """Ran to its end (passed or failed): its figures describe the whole suite."""
        return self.status in self.COMPLETE

    @property
    def tests_left_out(self) -> int:
        """Collected tests an unfinished run (cancelled, timed out...) never reported."""
        if self.is_active or self.is_complete or self.is_load or not self.collected:
            return 0  # a load run loops its tests for a time: none is "left out"
        return max(0, self.collected - self.tests_total)

    @property
    def is_launchable(self) -> bool:
        """Whether its configuration snapshot can be launched again here: an outside run's
        (ingested from CI) describes someone else's machine, not a configuration."""
        return self.trigger != self.Trigger.EXTERNAL and self.engine in dict(ENGINES)

    @property
    def engine(self) -> str:
        return self.config_snapshot.get("engine", "xdist")

    @property
    def is_load(self) -> bool:
        """A load run (issue #16): its tests were looped by users, its figures are load's."""
        return self.config_snapshot.get("mode") == "load"

    @property
    def config_name(self) -> str:
        """The configuration's name when the run was made: a later rename or deletion of the
        configuration does not move its past runs (trends and reports group by it)."""
        return self.config_snapshot.get("name", "")

    @property
    def rerun_of(self) -> str:
        """The node id this run repeats alone (RunQuerySet.whole), or ""."""
        return self.config_snapshot.get("rerun_of", "")

    @property
    def status_label(self) -> str:
        """The status as people read it ("timed out", not "timed_out")."""
        return self.Status(self.status).label.lower() if self.status in self.Status.values else ""

    @property
    def metrics_note(self) -> str:
        """Why a finished test run's speedup, efficiency and measured speedup are null, or ""
        when they stand. "" for a queued or running run (its figures come when it ends; saying
        "still running" of a queued run would be false) and for a load run (its figures are
        load's: iterations, latencies; it has no speedup to explain)."""
        if self.is_active or self.is_load:
            return ""
        if self.tests_total <= self.tests_skipped:
            return "no test ran: there is no work to measure a speedup on"
        return self.FIGURES_WITHHELD.get(self.status, "")

    @property
    def load_totals(self) -> dict | None:
        """A load run's ``iterations`` and ``failures`` (failures + exceptions) over the whole
        load, from its stored total (runs.models.load.LoadEntry); None for a run of tests. The
        runs list shows them instead of tests passed / collected, which a load run does not
        have."""
        if not self.is_load:
            return None
        row = self.load_entries.filter(kind="total", name="").first()
        entry = row.entry if row else None
        return {
            "iterations": entry.count if entry else 0,
            "failures": entry.failures + entry.exceptions if entry else 0,
        }

    @property
    def figures_withheld(self) -> bool:
        """Whether speedup, efficiency and measured speedup are null: a run not yet finished, a
        load run, or one metrics_note explains."""
        return self.is_active or self.is_load or bool(self.metrics_note)

    @property
    def duration(self):
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None

    @property
    def sweep(self) -> dict:
        """{"id", "step", "steps", "after"} when the run is a step of a sweep (runs.execution.
        sweep), else {}."""
        return self.config_snapshot.get("sweep") or {}

    @property
    def breakdown(self) -> dict | None:
        """The finished breakdown (None while running, for a run without timings, or for a
        load run: its processes loop tests for a set time, so "teardown" or "idle" would
        describe the load's schedule, not the suite)."""
        tb = self.time_breakdown
        if self.is_load or not tb or "startup" not in tb:
            return None
        return {k: v for k, v in tb.items() if k != "marks"}  # marks: the sink's working data

    def withhold_figures(self) -> None:
        """Null the figures a run that did not run its tests to their end cannot claim
        (metrics_note says why): finishing calls it before saving."""
        if self.figures_withheld:
            self.speedup = self.efficiency = self.speedup_measured = None

    def metrics_dict(self) -> dict:
        honest = not self.figures_withheld  # rows stored before the rule are not shown either
        return {
            "wall_seconds": self.wall_seconds,
            "serial_seconds": self.serial_seconds,
            "speedup": self.speedup if honest else None,
            "speedup_measured": self.speedup_measured if honest else None,
            "efficiency": self.efficiency if honest else None,
            "balance": self.balance,
            "flakiness_rate": self.flakiness_rate,
            "metrics_note": self.metrics_note or None,
        }

    def tests_dict(self) -> dict:
        return {
            "total": self.tests_total,
            "passed": self.tests_passed,
            "failed": self.tests_failed,
            "skipped": self.tests_skipped,
            "errors": self.tests_errors,
            "flaky": self.tests_flaky,
        }

    @property
    def ci_exit_code(self) -> int:
        """0 passed, 1 tests failed, 2 pytest refused its arguments (exit code 4: a bad -k, an
        unknown option), 3 the run itself failed (error, timed out, cancelled, interrupted)."""
        if self.status == self.Status.ERROR and self.exit_code == PYTEST_USAGE_ERROR:
            return 2
        return {self.Status.PASSED: 0, self.Status.FAILED: 1}.get(self.status, 3)

    def summary(self) -> dict:
        """The run_suite --json contract (README: Running a suite from a terminal)."""
        return {
            "run_id": self.id,
            "status": self.status,
            "engine": self.engine,
            "workers": self.workers,
            **self.metrics_dict(),
            "time_breakdown": self.breakdown,
            "tests": self.tests_dict(),
            "per_worker": [
                {"id": w.worker, "tests": w.tests, "busy_seconds": round(w.busy_seconds, 6)}
                for w in self.worker_stats.all()
            ],
        }

    def to_dict(self, *, workers: bool = True) -> dict:
        data = {
            "run_id": self.id,
            "id": self.id,
            "suite": self.suite.name,
            "status": self.status,
            "engine": self.engine,
            "workers": self.workers or self.config_snapshot.get("workers"),
            "trigger": self.trigger,
            "commit": self.commit,
            "branch": self.branch,
            "ci_url": self.ci_url,
            "config": self.config_snapshot,
            "created_at": iso(self.created_at),
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "exit_code": self.exit_code,
            "message": self.message,
            "log_bytes_cut": self.log_bytes_cut,
            "warnings": self.warnings.splitlines(),
            "collected": self.collected,
            **self.metrics_dict(),
            "time_breakdown": self.breakdown,
            "tests": self.tests_dict(),
            "url": self.get_absolute_url(),
        }
        if workers:
            data["per_worker"] = [w.to_dict() for w in self.worker_stats.all()]
        # A run over several machines (runs.execution.fleet): each machine's shard and state.
        data["machines"] = (
            [s.to_dict() for s in self.shards.select_related("agent")]
            if self.config_snapshot.get("fleet")
            else []
        )
        return data


class WorkerStat(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="worker_stats")
    worker = models.CharField(max_length=64)
    tests = models.PositiveIntegerField(default=0)
    busy_seconds = models.FloatField(default=0.0)
    first_start = models.FloatField(null=True, blank=True)
    last_stop = models.FloatField(null=True, blank=True)
    crashed = models.PositiveIntegerField(default=0)
    current_test = models.CharField(max_length=1000, blank=True)

    class Meta:
        ordering = ["run", "worker"]
        constraints = [
            models.UniqueConstraint(fields=["run", "worker"], name="workerstat_unique_worker"),
        ]

    def __str__(self) -> str:
        return f"{self.worker} of run {self.run_id}"

    def to_dict(self) -> dict:
        return {
            "id": self.worker,
            "tests": self.tests,
            "busy_seconds": round(self.busy_seconds, 6),
            "first_start": self.first_start,
            "last_stop": self.last_stop,
            "crashed": self.crashed,
        }

    def live_dict(self) -> dict:
        """The live page's worker: its figures and the test it runs now."""
        return {**self.to_dict(), "current_test": self.current_test}


class TestResult(models.Model):
    """One attempt of one test (setup + call + teardown) on one worker."""

    __test__ = False  # not a pytest test class

    OUTCOMES = [
        (o, o)
        for o in ("passed", "failed", "skipped", "error", "xfailed", "xpassed", "rerun", "crashed")
    ]
    # The outcomes that fail a run (a `rerun` attempt does not: runner.metrics.FAILING, which
    # counts attempts for flakiness, does). Pages, quarantine and run_suite use this one.
    FAILING = ("failed", "error", "crashed")
    # A result as the API, the websocket and the pages show it (its run is known from context).
    FIELDS = (
        "nodeid",
        "worker",
        "outcome",
        "attempt",
        "when",
        "start",
        "stop",
        "duration",
        "longrepr",
        "group",
        "stdout",
        "stderr",
        "log",
    )
    # What a test printed (runner/inrun/_ptd_inrun/output.py keeps it, capped): its labels.
    OUTPUT = (("stdout", "stdout"), ("stderr", "stderr"), ("log", "log records"))

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="results")
    nodeid = models.CharField(max_length=1000)
    worker = models.CharField(max_length=64)
    outcome = models.CharField(max_length=10, choices=OUTCOMES)
    attempt = models.PositiveSmallIntegerField(default=0)
    when = models.CharField(max_length=10, blank=True)
    start = models.FloatField(null=True, blank=True)
    stop = models.FloatField(null=True, blank=True)
    duration = models.FloatField(default=0.0)
    longrepr = models.TextField(blank=True)
    # The test's xdist_group under --dist loadgroup (from its marks), else "".
    group = models.CharField(max_length=200, blank=True, default="")
    # Its captured output: failing attempts always, passing ones under capture_passed.
    stdout = models.TextField(blank=True, default="")
    stderr = models.TextField(blank=True, default="")
    log = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["run", "start", "id"]
        indexes = [
            # A run's results by worker and time: lanes and the Gantt timeline.
            models.Index(fields=["run", "worker", "start"], name="result_run_worker_start"),
            # A run's failures list and outcome counts.
            models.Index(fields=["run", "outcome"], name="result_run_outcome"),
            # A test's history across runs (flakiness, duration trend, scheduler history).
            models.Index(fields=["nodeid", "run"], name="result_nodeid_run"),
        ]

    def __str__(self) -> str:
        return f"{self.nodeid} {self.outcome}"

    def to_dict(self) -> dict:
        return {field: getattr(self, field) for field in self.FIELDS}

    @classmethod
    def live(cls, values: dict) -> dict:
        """A result as the websocket sends it: without the output streams it has not printed
        (most results: 10,000 passing tests would carry 330 KB of empty strings)."""
        streams = {field for field, _ in cls.OUTPUT}
        return {k: v for k, v in values.items() if v or k not in streams}

    def output(self) -> list[tuple[str, str]]:
        """``[(label, text)]`` of the streams it printed to (pages show them in this order)."""
        return [(label, getattr(self, f)) for f, label in self.OUTPUT if getattr(self, f)]
