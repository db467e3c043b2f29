"""What a load run stores (issue #16): compact by design, whatever its length or rate.

One ``LoadSummary`` per load run, one ``LoadSecond`` per second of load (all processes merged),
one ``LoadEntry`` per test and per endpoint (plus the run's total) holding its final histogram,
and one ``LoadError`` per distinct error. An hour at 1,000 iterations/s is ~3,600 second rows,
never a row per iteration. Histograms are ``runner.loadstats`` dicts, so figures are computed
from them on read (``figures()``) and merge exactly.
"""

from __future__ import annotations

from django.db import models

from runner.loadstats import Entry, Histogram
from runs.models.runs import Run

NAME_MAX = 1000
ERROR_MAX = 1000
TRACEBACK_MAX = 8000


class LoadSummary(models.Model):
    """A load run's own facts: its options as the engine applied them, how and when it
    stopped, and its thresholds as last evaluated (``[{expr, value, passed, abort}]``)."""

    run = models.OneToOneField(Run, on_delete=models.CASCADE, related_name="load_summary")
    users = models.PositiveIntegerField(default=0)
    processes = models.PositiveSmallIntegerField(default=0)
    started = models.FloatField(null=True, blank=True)  # load_start's time (epoch seconds)
    stopped = models.FloatField(null=True, blank=True)  # load_stop's, or the last tick's
    stop_reason = models.CharField(max_length=20, blank=True)
    thresholds = models.JSONField(default=list)
    # The threshold (its expression) whose failure stopped the run early, else "".
    aborted_by = models.CharField(max_length=400, blank=True)

    def __str__(self) -> str:
        return f"load of run {self.run_id}"

    @property
    def duration_seconds(self) -> float | None:
        if self.started is None or self.stopped is None:
            return None
        return max(0.0, self.stopped - self.started)


class LoadSecond(models.Model):
    """One second of a load run, every process's ticks merged: iterations (tests), their
    failures and latency percentiles, HTTP requests, and the users active."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="load_seconds")
    second = models.PositiveIntegerField()
    users = models.PositiveIntegerField(default=0)
    iterations = models.PositiveIntegerField(default=0)
    failures = models.PositiveIntegerField(default=0)  # failures + exceptions
    requests = models.PositiveIntegerField(default=0)
    request_failures = models.PositiveIntegerField(default=0)
    p50_ms = models.FloatField(null=True, blank=True)
    p95_ms = models.FloatField(null=True, blank=True)
    p99_ms = models.FloatField(null=True, blank=True)
    mean_ms = models.FloatField(null=True, blank=True)
    # The second's merged iteration histogram: a tick arriving after the row was written is
    # merged into it exactly.
    hist = models.JSONField(default=dict)
    total_ms = models.FloatField(default=0.0)

    SERIES_FIELDS = (
        "second",
        "users",
        "iterations",
        "failures",
        "requests",
        "request_failures",
        "p50_ms",
        "p95_ms",
        "p99_ms",
        "mean_ms",
    )

    class Meta:
        ordering = ["run", "second"]
        constraints = [
            models.UniqueConstraint(fields=["run", "second"], name="loadsecond_unique"),
        ]

    def __str__(self) -> str:
        return f"second {self.second} of run {self.run_id}"

    def set_histogram(self, histogram: Histogram) -> None:
        self.hist = histogram.to_dict()
        self.p50_ms = histogram.percentile(50)
        self.p95_ms = histogram.percentile(95)
        self.p99_ms = histogram.percentile(99)
        self.mean_ms = round(self.total_ms / self.iterations, 3) if self.iterations else None

    def to_dict(self) -> dict:
        data = {field: getattr(self, field) for field in self.SERIES_FIELDS}
        data["rps"] = self.iterations  # a row is one second
        return data


class LoadEntry(models.Model):
    """The statistics of a test or an endpoint over the whole load (``kind`` "test" or
    "endpoint"), or of every iteration (``kind`` "total", name ""): ``runner.loadstats.Entry``
    as a dict, histogram included."""

    class Kind(models.TextChoices):
        TOTAL = "total"
        TEST = "test"
        ENDPOINT = "endpoint"

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="load_entries")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    name = models.CharField(max_length=NAME_MAX, blank=True)
    data = models.JSONField(default=dict)

    class Meta:
        ordering = ["run", "kind", "name"]
        constraints = [
            models.UniqueConstraint(fields=["run", "kind", "name"], name="loadentry_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.name} of run {self.run_id}"

    @property
    def entry(self) -> Entry:
        return Entry.from_dict(self.data)


class LoadError(models.Model):
    """Failures of one test or endpoint grouped by their error ("ExcType: message"), with the
    first traceback seen."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="load_errors")
    name = models.CharField(max_length=NAME_MAX)
    kind = models.CharField(max_length=10)  # "failure" or "exception"
    error = models.CharField(max_length=ERROR_MAX)
    count = models.PositiveBigIntegerField(default=0)
    traceback = models.TextField(blank=True)

    FIELDS = ("name", "kind", "error", "count", "traceback")

    class Meta:
        ordering = ["run", "-count"]
        constraints = [
            models.UniqueConstraint(fields=["run", "name", "error"], name="loaderror_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.error} ×{self.count}"

    def to_dict(self) -> dict:
        return {field: getattr(self, field) for field in self.FIELDS}
