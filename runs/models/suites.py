"""What to run: a suite (a directory and its interpreter) and its run configurations."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.urls import reverse
from django.utils import timezone

from runner import options
from runs.numbers import ID_MAX, object_id

ENGINES = [("fork", "fork (collect once, then fork)"), ("xdist", "xdist (pytest -n)")]
DIST_MODES = [
    ("load", "load: longest first, test by test"),
    ("loadscope", "loadscope: a module or class per worker"),
    ("loadfile", "loadfile: a file per worker"),
    ("loadgroup", "loadgroup: xdist_group marks together"),
]
MAX_WORKERS = options.MAX_WORKERS
MODES = [("tests", "tests: run each test once"), ("load", "load: users loop the tests")]
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


def iso(value):
    return value.isoformat() if value else None


class SuiteQuerySet(models.QuerySet):
    def find(self, ref: str | int) -> Suite | None:
        """The suite an API or ingestion client means: a number (or digits) is an id, anything
        else a name (names are never all digits: validate_suite_name)."""
        if isinstance(ref, bool):  # JSON true is not suite 1
            return None
        if isinstance(ref, int):
            return self.filter(pk=ref).first() if 0 < ref <= ID_MAX else None
        if ref.isascii() and ref.isdigit():
            number = object_id(ref)
            return None if number is None else self.filter(pk=number).first()
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
        """The configuration a launch without one uses. Read-only (pages call it on GET): a suite
        without any configuration gets an unsaved default, which whoever launches or edits saves."""
        return (
            self.configs.filter(is_default=True).first()
            or self.configs.first()
            or RunConfig(suite=self, name="default", is_default=True)
        )

    def find_config(self, ref: str | int | None) -> RunConfig | None:
        """The configuration a client names (its name, or its id as a number); the default
        one when ``ref`` is empty or names it; None when the suite has no such one."""
        default = self.default_config()
        if ref is None or ref == "" or ref == default.name:
            return default
        configs = self.configs.all()
        if isinstance(ref, int) and 0 < ref <= ID_MAX and (found := configs.filter(pk=ref).first()):
            return found
        return configs.filter(name=str(ref)).first()

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "name": self.name,
            "path": self.path,
            "python": self.python,
            "pytest_args": self.pytest_args,
            "env": sorted(self.env),  # names only: values may be secrets
            "description": self.description,
            "created_at": iso(self.created_at),
        }


def bounds(option: str) -> list:
    """The validators of an option's column: its bounds as a launch takes them (runner.options),
    so that no form (the admin's too) saves a value every launch would refuse."""
    spec = options.BY_NAME[option]
    return [MinValueValidator(spec.low), MaxValueValidator(spec.high)]


class RunConfig(models.Model):
    """How to run a suite: workers, engine, distribution, repeats, reruns, selection, timeout,
    and for load mode its users, ramp, stop conditions and thresholds."""

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
    repeat = models.PositiveSmallIntegerField(default=1, validators=bounds("repeat"))
    reruns = models.PositiveSmallIntegerField(default=0, validators=bounds("reruns"))
    timeout = models.PositiveIntegerField(
        null=True, blank=True, validators=bounds("timeout"), help_text="Seconds, or empty."
    )
    keyword = models.CharField(max_length=500, blank=True, help_text="pytest -k expression")
    markers = models.CharField(max_length=500, blank=True, help_text="pytest -m expression")
    capture_passed = models.BooleanField(
        default=False,
        help_text="Keep what passing tests print too (like -rP); failing tests' always is.",
    )
    # Load mode (issue #16): the selected tests looped by concurrent users.
    mode = models.CharField(max_length=10, choices=MODES, default="tests")
    users = models.PositiveIntegerField(default=10, validators=bounds("users"))
    spawn_rate = models.FloatField(
        default=10.0, validators=bounds("spawn_rate"), help_text="Users started per second."
    )
    duration = models.PositiveIntegerField(
        null=True, blank=True, validators=bounds("duration"), help_text="Seconds of load."
    )
    iterations = models.PositiveIntegerField(
        null=True, blank=True, validators=bounds("iterations"), help_text="Iterations per user."
    )
    think_time = models.FloatField(
        default=0.0, validators=bounds("think_time"), help_text="Seconds between iterations."
    )
    thresholds = models.JSONField(
        default=list, blank=True, help_text='e.g. ["p95<300ms", "errors<1% abort"]'
    )
    # Runs across machines (runs.execution.fleet): 1 and no queue is a run on this server.
    machines = models.PositiveSmallIntegerField(
        default=1,
        validators=[MaxValueValidator(options.MAX_MACHINES)],
        help_text="Machines (agents) to spread the run over; 0 means every idle agent.",
    )
    queue = models.CharField(
        max_length=40,
        blank=True,
        validators=[RegexValidator(options.QUEUE_NAME.pattern, "Letters, digits, '.', '_', '-'.")],
        help_text="The agents' queue (empty: 'default' when machines is not 1).",
    )

    class Meta:
        ordering = ["suite", "-is_default", "name"]
        constraints = [
            models.UniqueConstraint(fields=["suite", "name"], name="runconfig_unique_name"),
        ]

    def __str__(self) -> str:
        return f"{self.suite.name}/{self.name}"

    def clean(self) -> None:
        # Thresholds' syntax is checked by the forms and the launch (runs.load.thresholds).
        if self.mode == "load" and not (self.duration or self.iterations):
            raise ValidationError(
                {"duration": "A load run stops after a duration or a number of iterations."}
            )

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
            "capture_passed": self.capture_passed,
            "mode": self.mode,
            "users": self.users,
            "spawn_rate": self.spawn_rate,
            "duration": self.duration,
            "iterations": self.iterations,
            "think_time": self.think_time,
            "thresholds": list(self.thresholds),
            "machines": self.machines,
            "queue": self.queue,
        }
