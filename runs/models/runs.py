"""Suites, run configurations, runs and their results.

Models carry their own behaviour (validation, `to_dict()`); services.py orchestrates them.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import sys
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.urls import reverse
from django.utils import timezone

ENGINES = [("fork", "fork (collect once, then fork)"), ("xdist", "xdist (pytest -n)")]
DIST_MODES = [
    ("load", "load: longest first, test by test"),
    ("loadscope", "loadscope: a module or class per worker"),
    ("loadfile", "loadfile: a file per worker"),
    ("loadgroup", "loadgroup: xdist_group marks together"),
]
MAX_WORKERS = 64
PYTEST_USAGE_ERROR = 4  # pytest.ExitCode.USAGE_ERROR
name_validator = RegexValidator(
    r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$",
    "Use letters, digits, '.', '_' or '-' (starting with a letter or digit).",
)
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Words of the URLs a suite's name would stand for (/suites/new/): no suite may be named so.
RESERVED_SUITE_NAMES = frozenset({"new"})


def validate_suite_name(name: str) -> None:
    """Suites are found by name in pages and by name or id in the API and ingestion: a name
    never reads as an id (not all digits) nor as a route word, so each reference means one
    suite."""
    if name.isdigit():
        raise ValidationError("A suite's name cannot be only digits: it would read as an id.")
    if name.lower() in RESERVED_SUITE_NAMES:
        raise ValidationError(f"{name!r} is a reserved word of the dashboard's addresses.")


def _iso(value):
    return value.isoformat() if value else None


class SuiteQuerySet(models.QuerySet):
    def find(self, ref: str | int) -> Suite | None:
        """The suite an API or ingestion client means: a number (or digits) is an id, anything
        else a name (names are never all digits: validate_suite_name)."""
        if isinstance(ref, bool):  # JSON true is not suite 1
            return None
        if isinstance(ref, int) or (ref.isascii() and ref.isdigit()):
            number = int(ref)
            return self.filter(pk=number).first() if 0 < number < 2**63 else None
        return self.filter(name=ref).first()


class Suite(models.Model):
    """A directory holding a pytest suite, and the interpreter that runs it."""

    name = models.CharField(
        max_length=100, unique=True, validators=[name_validator, validate_suite_name]
    )
    path = models.CharField(max_length=1000, help_text="Directory of the suite (its rootdir).")
    python = models.CharField(
        max_length=1000,
        blank=True,
        help_text="Interpreter that runs the suite; empty means the dashboard's own.",
    )
    pytest_args = models.JSONField(
        default=list, blank=True, help_text="Extra pytest arguments, as a JSON list of strings."
    )
    env = models.JSONField(
        default=dict, blank=True, help_text="Extra environment variables, as a JSON object."
    )
    description = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    objects = SuiteQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("suite", args=[self.name])

    @property
    def interpreter(self) -> str:
        return self.python or sys.executable

    def clean(self) -> None:
        errors = {}
        path = Path(self.path).expanduser()
        if not path.is_absolute():
            errors["path"] = "Give an absolute path."
        elif not path.is_dir():
            errors["path"] = f"{self.path} is not a directory."
        if self.python and not Path(self.python).is_file():
            errors["python"] = f"{self.python} is not a file."
        if not isinstance(self.pytest_args, list) or not all(
            isinstance(a, str) for a in self.pytest_args
        ):
            errors["pytest_args"] = "Give a JSON list of strings."
        if not isinstance(self.env, dict) or not all(
            isinstance(k, str) and ENV_NAME.match(k) and isinstance(v, str)
            for k, v in self.env.items()
        ):
            errors["env"] = 'Give a JSON object of NAME: "value" strings.'
        if errors:
            raise ValidationError(errors)

    def default_config(self) -> RunConfig:
        config = self.configs.filter(is_default=True).first() or self.configs.first()
        if config is None:
            config = RunConfig.objects.create(suite=self, name="default", is_default=True)
        return config

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "name": self.name,
            "path": self.path,
            "python": self.python,
            "pytest_args": self.pytest_args,
            "env": sorted(self.env),  # names only: values may be secrets
            "description": self.description,
            "created_at": _iso(self.created_at),
        }


class RunConfig(models.Model):
    """How to run a suite: workers, engine, distribution, repeats, reruns, selection, timeout."""

    suite = models.ForeignKey(Suite, on_delete=models.CASCADE, related_name="configs")
    name = models.CharField(max_length=100, validators=[name_validator])
    is_default = models.BooleanField(default=False)
    workers = models.PositiveSmallIntegerField(
        default=4,
        validators=[MaxValueValidator(MAX_WORKERS)],
        help_text="Number of workers; 0 means one per CPU core (-n auto).",
    )
    # fork: collect once, fork N workers (Linux); xdist stays the compatible alternative.
    engine = models.CharField(max_length=10, choices=ENGINES, default="fork")
    dist = models.CharField(max_length=10, choices=DIST_MODES, default="load")
    repeat = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1), MaxValueValidator(1000)]
    )
    reruns = models.PositiveSmallIntegerField(default=0, validators=[MaxValueValidator(20)])
    timeout = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)], help_text="Seconds, or empty."
    )
    keyword = models.CharField(max_length=500, blank=True, help_text="pytest -k expression")
    markers = models.CharField(max_length=500, blank=True, help_text="pytest -m expression")

    class Meta:
        ordering = ["suite", "-is_default", "name"]
        constraints = [
            models.UniqueConstraint(fields=["suite", "name"], name="runconfig_unique_name"),
        ]

    def __str__(self) -> str:
        return f"{self.suite.name}/{self.name}"

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "suite": self.suite.name,
            "name": self.name,
            "workers": self.workers,
            "engine": self.engine,
            "dist": self.dist,
            "repeat": self.repeat,
            "reruns": self.reruns,
            "timeout": self.timeout,
            "keyword": self.keyword,
            "markers": self.markers,
        }


class RunQuerySet(models.QuerySet):
    def whole(self) -> RunQuerySet:
        """Without the runs of one test made to probe its flakiness (a test page's Rerun xK):
        trends and reports are about the suite's runs."""
        return self.exclude(config_snapshot__has_key="rerun_of")


class Run(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        PASSED = "passed"
        FAILED = "failed"
        ERROR = "error"
        CANCELLED = "cancelled"
        INTERRUPTED = "interrupted"

    class Trigger(models.TextChoices):
        UI = "ui"
        API = "api"
        CLI = "cli"
        EXTERNAL = "external"

    ACTIVE = (Status.QUEUED, Status.RUNNING)

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
    # Metrics (DESIGN.md section 3), stored when the run finishes.
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
        return self.status in (self.Status.PASSED, self.Status.FAILED)

    @property
    def tests_left_out(self) -> int:
        """Collected tests an unfinished run (cancelled, timed out...) never reported."""
        if self.is_active or self.is_complete or not self.collected:
            return 0
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
    def config_name(self) -> str:
        """The configuration's name when the run was made: a later rename or deletion of the
        configuration does not move its past runs (trends and reports group by it)."""
        return self.config_snapshot.get("name", "")

    @property
    def rerun_of(self) -> str:
        """The node id this run repeats alone (RunQuerySet.whole), or ""."""
        return self.config_snapshot.get("rerun_of", "")

    @property
    def duration(self):
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None

    def metrics_dict(self) -> dict:
        return {
            "wall_seconds": self.wall_seconds,
            "serial_seconds": self.serial_seconds,
            "speedup": self.speedup,
            "speedup_measured": self.speedup_measured,
            "efficiency": self.efficiency,
            "balance": self.balance,
            "flakiness_rate": self.flakiness_rate,
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
        unknown option), 3 the run itself failed (error, cancelled, interrupted)."""
        if self.status == self.Status.ERROR and self.exit_code == PYTEST_USAGE_ERROR:
            return 2
        return {self.Status.PASSED: 0, self.Status.FAILED: 1}.get(self.status, 3)

    def summary(self) -> dict:
        """The run_suite --json contract (DESIGN.md section 4)."""
        return {
            "run_id": self.id,
            "status": self.status,
            "engine": self.engine,
            "workers": self.workers,
            **self.metrics_dict(),
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
            "created_at": _iso(self.created_at),
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "exit_code": self.exit_code,
            "message": self.message,
            "log_bytes_cut": self.log_bytes_cut,
            "collected": self.collected,
            **self.metrics_dict(),
            "tests": self.tests_dict(),
            "url": self.get_absolute_url(),
        }
        if workers:
            data["per_worker"] = [w.to_dict() for w in self.worker_stats.all()]
        return data


class WorkerStat(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="worker_stats")
    worker = models.CharField(max_length=20)
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


class TestResult(models.Model):
    """One attempt of one test (setup + call + teardown) on one worker."""

    __test__ = False  # not a pytest test class

    OUTCOMES = [
        (o, o)
        for o in ("passed", "failed", "skipped", "error", "xfailed", "xpassed", "rerun", "crashed")
    ]
    FAILING = ("failed", "error", "crashed")

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="results")
    nodeid = models.CharField(max_length=1000)
    worker = models.CharField(max_length=20)
    outcome = models.CharField(max_length=10, choices=OUTCOMES)
    attempt = models.PositiveSmallIntegerField(default=0)
    when = models.CharField(max_length=10, blank=True)
    start = models.FloatField(null=True, blank=True)
    stop = models.FloatField(null=True, blank=True)
    duration = models.FloatField(default=0.0)
    longrepr = models.TextField(blank=True)

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
        return {
            "nodeid": self.nodeid,
            "worker": self.worker,
            "outcome": self.outcome,
            "attempt": self.attempt,
            "when": self.when,
            "start": self.start,
            "stop": self.stop,
            "duration": self.duration,
            "longrepr": self.longrepr,
        }


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


# What ApiToken.create_for makes: "ptd_" and 43 URL-safe characters (shorter ones too, to
# be safe). Used to scrub tokens out of text that is stored and shown (a run's arguments).
TOKEN_RE = re.compile(r"ptd_[A-Za-z0-9_-]{16,}")
REDACTED = "ptd_[redacted]"


def redact_tokens(value):
    """`value` (text, or lists and dicts of it, as in a JSON field) with tokens redacted."""
    if isinstance(value, str):
        return TOKEN_RE.sub(REDACTED, value)
    if isinstance(value, list):
        return [redact_tokens(v) for v in value]
    if isinstance(value, dict):
        return {k: redact_tokens(v) for k, v in value.items()}
    return value


class ApiTokenQuerySet(models.QuerySet):
    def authenticate(self, raw: str):
        """The token's row for a raw token, or None. Look-up by a hash of the whole token."""
        if not raw or not raw.startswith(ApiToken.PREFIX):
            return None
        digest = hash_token(raw)
        token = self.select_related("user").filter(hashed=digest).first()
        if token is None or not secrets.compare_digest(token.hashed, digest):
            return None
        if not token.user.is_active:
            return None
        return token


class ApiToken(models.Model):
    """A bearer token for the API. Only a SHA-256 of it is stored; it is shown once."""

    PREFIX = "ptd_"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=12, help_text="First characters, to recognise it.")
    hashed = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name or 'unnamed'}) of {self.user}"

    @classmethod
    def create_for(cls, user, name: str = "") -> tuple[ApiToken, str]:
        raw = cls.PREFIX + secrets.token_urlsafe(32)
        token = cls.objects.create(user=user, name=name, prefix=raw[:12], hashed=hash_token(raw))
        return token, raw

    def touch(self) -> None:
        now = timezone.now()
        # At most one write a minute per token: the API stays read-mostly.
        if self.last_used_at is None or (now - self.last_used_at).total_seconds() > 60:
            ApiToken.objects.filter(pk=self.pk).update(last_used_at=now)
            self.last_used_at = now

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "name": self.name,
            "prefix": self.prefix,
            "created_at": _iso(self.created_at),
            "last_used_at": _iso(self.last_used_at),
        }
