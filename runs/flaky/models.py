"""Per-suite, per-test summary kept up to date at the end of each run (issue #6).

One row per (suite, base node id). Pages and the API read these rows instead of rescanning
every run's results; runs.flaky.summary.record_run updates them in bulk.
"""

from __future__ import annotations

import math

from django.conf import settings
from django.db import models
from django.urls import reverse

# Accepted chance that a test called "fails only in parallel" just got lucky in 1-worker runs.
PARALLEL_ONLY_RISK = 0.05


def _iso(value):
    return value.isoformat() if value else None


class TestStat(models.Model):
    """What a suite's history says about one test (its base node id: repeats folded in)."""

    __test__ = False  # not a pytest test class

    RECENT_RUNS = 20  # K: fail rate and the outcome strip cover the last K runs

    suite = models.ForeignKey("runs.Suite", on_delete=models.CASCADE, related_name="test_stats")
    nodeid = models.CharField(max_length=1000)
    runs_seen = models.PositiveIntegerField(default=0)
    runs_failed = models.PositiveIntegerField(default=0, help_text="runs with a failing attempt")
    runs_flaky = models.PositiveIntegerField(
        default=0, help_text="runs where it both passed and failed"
    )
    # A flip: a run where the test was flaky in the run itself, or whose outcome differs from
    # an earlier run on the same commit.
    flip_count = models.PositiveIntegerField(default=0)
    first_flaky_at = models.DateTimeField(null=True, blank=True)
    last_flip_at = models.DateTimeField(null=True, blank=True)
    last_flip_run = models.ForeignKey(
        "runs.Run", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    first_seen_at = models.DateTimeField(null=True, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    last_run = models.ForeignKey(
        "runs.Run", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_outcome = models.CharField(max_length=10, blank=True)  # passed/failed/flaky/skipped
    fail_rate = models.FloatField(
        null=True, blank=True, help_text="failing attempts / attempts over the last K runs"
    )
    mean_duration = models.FloatField(null=True, blank=True)
    # [[run_id, outcome, attempts, failures, workers], ...] oldest first, at most RECENT_RUNS.
    recent = models.JSONField(default=list, blank=True)
    # {commit: "p" | "f" | "pf"}: outcomes seen per commit (the latest commits only).
    commits = models.JSONField(default=dict, blank=True)
    # {"4": [attempts, failures]} by the run's worker count; {"gw0": [...]} by worker id.
    by_workers = models.JSONField(default=dict, blank=True)
    by_worker_id = models.JSONField(default=dict, blank=True)
    quarantined = models.BooleanField(default=False)
    quarantined_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    quarantined_at = models.DateTimeField(null=True, blank=True)
    quarantine_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["suite", "nodeid"]
        constraints = [
            models.UniqueConstraint(fields=["suite", "nodeid"], name="teststat_unique_test"),
        ]
        indexes = [
            models.Index(fields=["suite", "-last_flip_at"], name="teststat_suite_flip"),
            models.Index(fields=["suite", "quarantined"], name="teststat_suite_quarantine"),
        ]

    def __str__(self) -> str:
        return f"{self.nodeid} ({self.suite_id})"

    def get_absolute_url(self) -> str:
        return reverse("test_history", args=[self.suite.name, self.nodeid])

    # Derived figures ---------------------------------------------------------------------

    @property
    def is_flaky(self) -> bool:
        return self.flip_count > 0

    @property
    def flip_rate(self) -> float:
        return self.flip_count / self.runs_seen if self.runs_seen else 0.0

    def _totals(self, table: dict, keep) -> tuple[int, int]:
        attempts = failures = 0
        for key, (a, f) in table.items():
            if keep(key):
                attempts += a
                failures += f
        return attempts, failures

    @property
    def serial_runs_attempts(self) -> int:
        return self._totals(self.by_workers, lambda k: k == "1")[0]

    @property
    def failed_serial(self) -> bool:
        """Whether it ever failed in a 1-worker run."""
        return self._totals(self.by_workers, lambda k: k == "1")[1] > 0

    @property
    def failed_parallel(self) -> bool:
        return self._totals(self.by_workers, lambda k: k != "1")[1] > 0

    @property
    def parallel_fail_rate(self) -> float | None:
        attempts, failures = self._totals(self.by_workers, lambda k: k != "1")
        return failures / attempts if attempts else None

    @property
    def serial_attempts_needed(self) -> int | None:
        """Clean 1-worker attempts needed before calling it "fails only in parallel".

        A test failing at its parallel rate p would pass n serial attempts by luck with
        probability (1 - p) ** n: the smallest n that makes this under PARALLEL_ONLY_RISK.
        A test failing 1 time in 5 needs 14 clean serial attempts, not one.
        """
        p = self.parallel_fail_rate
        if not p:
            return None
        if p >= 1:
            return 1
        return max(1, math.ceil(math.log(PARALLEL_ONLY_RISK) / math.log(1 - p)))

    @property
    def parallel_only(self) -> bool:
        """Fails with several workers, and never in enough 1-worker attempts to rule out luck."""
        needed = self.serial_attempts_needed
        return needed is not None and not self.failed_serial and self.serial_runs_attempts >= needed

    @staticmethod
    def rates(table: dict) -> list[dict]:
        rows = []
        for key, (attempts, failures) in table.items():
            rows.append(
                {
                    "key": key,
                    "attempts": attempts,
                    "failures": failures,
                    "fail_rate": round(failures / attempts, 4) if attempts else None,
                }
            )
        return sorted(rows, key=lambda r: (len(r["key"]), r["key"]))

    def to_dict(self) -> dict:
        return {
            "nodeid": self.nodeid,
            "runs_seen": self.runs_seen,
            "runs_failed": self.runs_failed,
            "runs_flaky": self.runs_flaky,
            "flip_count": self.flip_count,
            "flip_rate": round(self.flip_rate, 4),
            "fail_rate": self.fail_rate,
            "first_flaky_at": _iso(self.first_flaky_at),
            "last_flip_at": _iso(self.last_flip_at),
            "last_seen_at": _iso(self.last_seen_at),
            "last_outcome": self.last_outcome,
            "parallel_only": self.parallel_only,
            "failed_serial": self.failed_serial,
            "quarantined": self.quarantined,
        }
