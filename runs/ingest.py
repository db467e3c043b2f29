"""Ingestion of runs made elsewhere (CI machines running pytest with runner/ingest.py).

POST /api/ingest/runs                 -> 201 {"id", "status", "url"}: a running external run
POST /api/ingest/runs/{id}/events     -> a batch in the in-run plugin's event format
POST /api/ingest/runs/{id}/finish     -> the session's exit status and wall seconds

Events are stored by the same DbSink the pool uses, and the run is closed by the same
finish_run, so an external run looks like any other (metrics, live page, JUnit XML).
Any authenticated token may ingest into an existing suite (its path need not exist here);
only the token's user (or staff) may add to or close a run it created.
"""

from __future__ import annotations

import time
from typing import Literal

from django.db import transaction
from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from django.utils import timezone
from ninja import Field, Router, Schema, Status
from ninja.errors import HttpError
from pydantic import BaseModel

from runner.pool import RunOutcome
from runs import live, permissions
from runs.models import Run, Suite
from runs.sink import DbSink, finish_run

MAX_BATCH = 5000
MAX_WORKERS_EXTERNAL = 1024
OUTCOMES = Literal["passed", "failed", "skipped", "error", "xfailed", "xpassed", "rerun", "crashed"]


class IngestSink(DbSink):
    """The pool's sink, fed by HTTP batches; one per server process."""

    def forget(self, run_id: int) -> None:
        with self._lock:
            self._states.pop(run_id, None)


sink = IngestSink()
router = Router(tags=["ingest"])


class IngestRunIn(Schema):
    suite: str | int
    workers: int | None = Field(None, ge=1, le=MAX_WORKERS_EXTERNAL)
    commit: str = Field("", max_length=64)
    branch: str = Field("", max_length=200)
    ci_url: str = Field("", max_length=1000)
    host: str = Field("", max_length=200, description="machine the run is made on")
    args: list[str] = Field([], max_length=200, description="the pytest command line")


class EventIn(BaseModel):
    """One event of the in-run plugin (runner/inrun/_ptd_inrun/plugin.py).

    A plain pydantic model, not a ninja Schema: ninja's per-object validator (made for ORM
    objects) costs 6 x more, and a 10,000-test run sends 10,000 of these.
    """

    type: str = Field(max_length=40)
    nodeid: str | None = Field(None, max_length=1000)
    worker: str | None = Field(None, min_length=1, max_length=20)
    outcome: OUTCOMES | None = None
    attempt: int | None = Field(None, ge=0, le=10_000)
    when: str | None = Field(None, max_length=10)
    start: float | None = Field(None, ge=0, le=1e11, allow_inf_nan=False)
    stop: float | None = Field(None, ge=0, le=1e11, allow_inf_nan=False)
    duration: float | None = Field(None, ge=0, le=1e7, allow_inf_nan=False)
    longrepr: str | None = None
    count: int | None = Field(None, ge=0, le=100_000_000)
    workers: int | None = Field(None, ge=0, le=MAX_WORKERS_EXTERNAL)
    exitstatus: int | None = Field(None, ge=-1000, le=1000)


class EventBatch(Schema):
    events: list[EventIn] = Field(max_length=MAX_BATCH)
    first_seq: int | None = Field(
        None,
        ge=0,
        le=2**62,
        description="the number of the batch's first event in the run (0, 1, ...): events "
        "already stored under their number are skipped, so a batch may be sent again safely",
    )


class FinishIn(Schema):
    exitstatus: int = Field(ge=-1000, le=1000, description="pytest's exit status")
    wall_seconds: float = Field(ge=0, le=1e7, allow_inf_nan=False)
    message: str = Field("", max_length=5000)


class IngestCreated(Schema):
    id: int
    status: str
    url: str


class BatchStored(Schema):
    accepted: int
    duplicates: int = Field(0, description="events of the batch stored before (by first_seq)")
    server_seconds: float = Field(description="time the server took to store the batch")


class Detail(Schema):
    detail: str


def find_suite(ref: str | int) -> Suite:
    suite = Suite.objects.find(ref)
    if suite is None:
        raise HttpError(404, f"suite: no suite {ref!r}")
    return suite


def external_run(request: HttpRequest, run_id: int) -> Run:
    """The external, still running run `run_id` that this user may write to."""
    if not 0 < run_id < 2**63:
        raise HttpError(404, f"no run {run_id}")
    run = get_object_or_404(Run.objects.select_related("suite"), pk=run_id)
    if run.trigger != Run.Trigger.EXTERNAL:
        raise HttpError(409, f"run {run.id} was not created by ingestion")
    if not permissions.can_stream(request.auth, run):
        raise HttpError(403, f"run {run.id} belongs to another user")
    if run.status != Run.Status.RUNNING:
        raise HttpError(409, f"run {run.id} is {run.status}, not running")
    return run


@router.post("/runs", response={201: IngestCreated, 403: Detail, 404: Detail})
def create_external_run(request, payload: IngestRunIn):
    if not permissions.can_stream(request.auth):
        raise HttpError(403, "you may not stream runs")
    suite = find_suite(payload.suite)
    snapshot = {
        "workers": payload.workers or 1,
        "engine": "external",
        "dist": "",
        "repeat": 1,
        "reruns": 0,
        "timeout": None,
        "keyword": "",
        "markers": "",
        "extra_args": payload.args,
        "host": payload.host or request.META.get("REMOTE_ADDR", ""),
    }
    run = Run.objects.create(
        suite=suite,
        config_snapshot=snapshot,
        status=Run.Status.RUNNING,
        trigger=Run.Trigger.EXTERNAL,
        user=request.auth,
        commit=payload.commit,
        branch=payload.branch,
        ci_url=payload.ci_url[:1000],
        workers=payload.workers or 0,
        started_at=timezone.now(),
    )
    sink.forget(run.id)  # a fresh state, even if an id was reused (rolled-back tests)
    live.publish(run.id, {"type": "status", "status": Run.Status.RUNNING})
    return Status(201, {"id": run.id, "status": run.status, "url": run.get_absolute_url()})


@router.post(
    "/runs/{run_id}/events",
    response={200: BatchStored, 400: Detail, 403: Detail, 404: Detail, 409: Detail},
)
def ingest_events(request, run_id: int, payload: EventBatch):
    started = time.perf_counter()
    run = external_run(request, run_id)
    events = []
    for index, event in enumerate(payload.events):
        data = event.model_dump(exclude_none=True)
        if event.type == "test":
            for key in ("nodeid", "outcome"):
                if key not in data:
                    raise HttpError(400, f"events[{index}].{key}: required for a test event")
        elif event.type in ("worker_up", "worker_down") and "worker" not in data:
            raise HttpError(400, f"events[{index}].worker: required for a {event.type} event")
        events.append(data)
    skipped = 0
    if payload.first_seq is None:
        sink.handle_events(run.id, events)
    else:
        with transaction.atomic():  # the run's batches one at a time: the count stays right
            received = Run.objects.select_for_update().values_list("events_received", flat=True)
            stored = received.get(pk=run.pk)
            end = payload.first_seq + len(events)
            skipped = min(len(events), max(0, stored - payload.first_seq))
            events = events[skipped:]
            Run.objects.filter(pk=run.pk).update(events_received=max(stored, end))
            sink.handle_events(run.id, events)
    return {
        "accepted": len(events),
        "duplicates": skipped,
        "server_seconds": round(time.perf_counter() - started, 6),
    }


@router.post(
    "/runs/{run_id}/finish",
    response={200: IngestCreated, 403: Detail, 404: Detail, 409: Detail},
)
def finish_external_run(request, run_id: int, payload: FinishIn):
    run = external_run(request, run_id)
    sink.forget(run.id)
    outcome = RunOutcome(
        run_id=run.id,
        returncode=payload.exitstatus,
        wall_seconds=payload.wall_seconds,
        reason=None,
        message=payload.message,
    )
    run = finish_run(run.id, outcome, background_history=True)  # the CI job waits on us
    if live.reachable(run.id):
        live.publish(run.id, {"type": "finished", "run": run.to_dict()})
    return {"id": run.id, "status": run.status, "url": run.get_absolute_url()}
