"""Runs across machines: the agents, a run's shards (one per machine) and its shared queue.

An agent is a Celery worker on some machine (``runner.agent``) known by its heartbeats. A run
over K machines has K shards, each the suite's fork-engine pytest on one agent, and one queue
of units (a test, or a group of tests under loadscope/loadfile/loadgroup) the shards lease
from, longest first (runs.execution.fleet).
"""

from __future__ import annotations

import time

from django.conf import settings
from django.db import models
from django.utils import timezone

from runs.models.runs import Run
from runs.models.suites import iso


class Agent(models.Model):
    name = models.CharField(max_length=40, unique=True)
    queue = models.CharField(max_length=40, default="default")
    workers = models.PositiveSmallIntegerField(default=1)
    host = models.CharField(max_length=200, blank=True)
    python_version = models.CharField(max_length=40, blank=True)
    pytest_version = models.CharField(max_length=40, blank=True)
    ptd_version = models.CharField(max_length=40, blank=True)
    first_seen = models.DateTimeField(default=timezone.now)
    last_heartbeat = models.FloatField(default=0.0)  # epoch seconds, the dashboard's clock
    runs_served = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["queue", "name"]

    def __str__(self) -> str:
        return self.name

    @property
    def alive(self) -> bool:
        return time.time() - self.last_heartbeat <= settings.PTD_AGENT_LOST_SECONDS

    def version_problem(self, ours: str) -> str:
        """Why shards are not sent to it, or "" (a different PTD: other engine, other wire)."""
        if self.ptd_version != ours:
            return f"PTD {self.ptd_version or '?'} here, the dashboard runs {ours or '?'}"
        return ""

    def active_shard(self) -> Shard | None:
        return self.shards.filter(state__in=Shard.ACTIVE).order_by("-id").first()

    def to_dict(self, ours: str) -> dict:
        """What the API and the Agents page show (the page's script polls the API: the
        heartbeat's age is the dashboard's, whatever the browser's clock says)."""
        shard = self.active_shard()
        beat = self.last_heartbeat or None
        if not self.alive:
            state = "lost"
        elif shard is not None:
            state = f"running run #{shard.run_id}"
        else:
            state = "idle"
        return {
            "name": self.name,
            "queue": self.queue,
            "state": state,
            "workers": self.workers,
            "host": self.host,
            "last_heartbeat": beat,
            "seconds_ago": None if beat is None else round(max(0.0, time.time() - beat), 1),
            "run": shard.run_id if shard is not None and self.alive else None,
            "python": self.python_version,
            "pytest": self.pytest_version,
            "ptd": self.ptd_version,
            "runs_served": self.runs_served,
            "refused": self.version_problem(ours),
        }


class Shard(models.Model):
    class State(models.TextChoices):
        QUEUED = "queued"  # sent to its agent's queue
        COLLECTING = "collecting"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"  # refused (commit, collection, directory) or its pytest failed
        LOST = "lost"  # its agent fell silent: its units went back to the queue
        CANCELLED = "cancelled"

    ACTIVE = (State.QUEUED, State.COLLECTING, State.RUNNING)

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="shards")
    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="shards")
    number = models.PositiveSmallIntegerField()
    state = models.CharField(max_length=12, choices=State.choices, default=State.QUEUED)
    task_id = models.CharField(max_length=64)
    workers = models.PositiveSmallIntegerField(default=1)
    # Its numbered events (runs.api.shards): a batch sent again is stored once.
    events_received = models.PositiveBigIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    last_heartbeat = models.FloatField(default=0.0)
    exit_code = models.IntegerField(null=True, blank=True)
    wall_seconds = models.FloatField(null=True, blank=True)
    message = models.TextField(blank=True)
    # The hash of the key its pytest uses for its collection and leases (runs.api.shards):
    # scoped to this shard, so the suite's code never holds the agent's staff token.
    key_hash = models.CharField(max_length=64, blank=True, db_index=True)

    class Meta:
        ordering = ["run", "number"]
        constraints = [
            models.UniqueConstraint(fields=["run", "number"], name="shard_unique_number"),
        ]

    def __str__(self) -> str:
        return f"shard {self.number} of run {self.run_id} on {self.agent.name}"

    @property
    def is_active(self) -> bool:
        return self.state in self.ACTIVE

    def to_dict(self) -> dict:
        return {
            "number": self.number,
            "agent": self.agent.name,
            "state": self.state,
            "workers": self.workers,
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "exit_code": self.exit_code,
            "message": self.message,
        }


class RunUnit(models.Model):
    """A unit of a run's shared queue: leased by one worker of one shard at a time."""

    class State(models.TextChoices):
        QUEUED = "queued"
        LEASED = "leased"
        DONE = "done"
        LOST = "lost"  # leased by a lost shard: what it did not report is queued again

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="units")
    key = models.CharField(max_length=1000)
    nodeids = models.JSONField(default=list)
    seconds = models.FloatField(default=0.0)
    state = models.CharField(max_length=8, choices=State.choices, default=State.QUEUED)
    shard = models.ForeignKey(
        Shard, null=True, blank=True, on_delete=models.SET_NULL, related_name="units"
    )
    worker = models.CharField(max_length=20, blank=True)
    leased_at = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["run", "-seconds", "id"]
        indexes = [models.Index(fields=["run", "state", "seconds"], name="unit_run_state_seconds")]

    def __str__(self) -> str:
        return f"{self.key} ({self.state})"
