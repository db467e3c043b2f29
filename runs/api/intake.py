"""Intake of runs made elsewhere: CI machines running pytest with the ingestion plugin.

POST /api/ingest/runs                 -> 201 {"id", "status", "url"}: a running external run
POST /api/ingest/runs/{id}/events     -> a batch in the in-run plugin's event format
POST /api/ingest/runs/{id}/finish     -> the session's exit status and wall seconds

Events are stored by the same DbSink the pool uses, and the run is closed by the same
finish_run, so an external run looks like any other (metrics, live page, JUnit XML).
Any authenticated token may ingest into an existing suite (its path need not exist here);
only the token's user (or staff) may add to or close a run it created.

Validation is at the schema: strict JSON types (no `true` for a number), text the database
can store (common.Text: no NUL, no lone surrogates), durations within their start and stop,
node ids that pytest_input accepts (they can be rerun here later), test times inside the
run's window with stop >= start, numbered batches without gaps. A body over Django's
DATA_UPLOAD_MAX_MEMORY_SIZE is a JSON 413 (api.py). Tokens never get into a run's stored
arguments: the plugin strips its --ptd-token option, and so does the server.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Literal

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from ninja import Field, Router, Schema, Status
from ninja.errors import HttpError
from pydantic import BaseModel, ConfigDict

from runner.client.ingestion import strip_token
from runs import permissions
from runs.api.common import Detail, Line, Message, Text, WebLink, find_suite, get_run
from runs.execution import environment
from runs.execution.pytest_input import NODEID_MAX, nodeid_problem
from runs.execution.sink import EVENT_TYPES
from runs.models import Run, redact_tokens

MAX_BATCH = 5000
MAX_WORKERS_EXTERNAL = 1024
OUTCOMES = Literal["passed", "failed", "skipped", "error", "xfailed", "xpassed", "rerun", "crashed"]
CLOCK_SKEW = 300.0  # seconds a CI machine's clock may differ from the server's
MAX_AGE = 7 * 24 * 3600.0  # a spooled run may be uploaded up to a week after it ran

ARG_MAX = 4096  # characters of one argument of the uploaded command line
DURATION_SLACK = 1.0  # seconds a test's duration may exceed its stop - start (rounding, clocks)

router = Router(tags=["ingest"])


class IngestRunIn(Schema):
    model_config = ConfigDict(strict=True)

    suite: str | int
    workers: int | None = Field(None, ge=1, le=MAX_WORKERS_EXTERNAL)
    commit: Line = Field("", max_length=64)
    branch: Line = Field("", max_length=200)
    ci_url: WebLink = Field("", max_length=1000)
    host: Line = Field("", max_length=200, description="machine the run is made on")
    args: list[Annotated[Text, Field(max_length=ARG_MAX)]] = Field(
        [], max_length=200, description="the pytest command line (never the token)"
    )
    started: float | None = Field(
        None,
        allow_inf_nan=False,
        description="when the pytest session started (epoch seconds, the CI machine's "
        "clock): test times before it are refused",
    )


class EventIn(BaseModel):
    """One event of the in-run plugin (runner/inrun/_ptd_inrun/plugin.py).

    A plain pydantic model, not a ninja Schema: ninja's per-object validator (made for ORM
    objects) costs 6 x more, and a 10,000-test run sends 10,000 of these.
    """

    model_config = ConfigDict(strict=True)

    type: Text = Field(max_length=40)
    nodeid: Text | None = Field(None, max_length=NODEID_MAX)
    worker: Line | None = Field(None, min_length=1, max_length=20)
    outcome: OUTCOMES | None = None
    attempt: int | None = Field(None, ge=0, le=10_000)
    when: Text | None = Field(None, max_length=10)
    start: float | None = Field(None, ge=0, le=1e11, allow_inf_nan=False)
    stop: float | None = Field(None, ge=0, le=1e11, allow_inf_nan=False)
    duration: float | None = Field(None, ge=0, le=1e7, allow_inf_nan=False)
    longrepr: Text | None = None
    # What the test printed (the plugin cut it to PTD_MAX_OUTPUT_PER_TEST; the sink cuts too).
    stdout: Text | None = None
    stderr: Text | None = None
    log: Text | None = None
    count: int | None = Field(None, ge=0, le=100_000_000)
    workers: int | None = Field(None, ge=0, le=MAX_WORKERS_EXTERNAL)
    exitstatus: int | None = Field(None, ge=-1000, le=1000)
    message: Message | None = Field(None, max_length=5000)  # a warning's, an internal error's
    # When the plugin emitted it (the CI machine's clock): session start and collection finish
    # feed the run's time breakdown, which clamps them to the run's time.
    time: float | None = Field(None, ge=0, le=1e11, allow_inf_nan=False)


class EventBatch(Schema):
    model_config = ConfigDict(strict=True)

    events: list[EventIn] = Field(max_length=MAX_BATCH)
    first_seq: int | None = Field(
        None,
        ge=0,
        le=2**62,
        description="the number of the batch's first event in the run (0, 1, ...): events "
        "already stored under their number are skipped, so a batch may be sent again safely; "
        "a number past those stored (a gap) is refused with a 409",
    )


class FinishIn(Schema):
    model_config = ConfigDict(strict=True)

    exitstatus: int = Field(ge=-1000, le=1000, description="pytest's exit status")
    wall_seconds: float = Field(ge=0, le=1e7, allow_inf_nan=False)
    message: Message = Field("", max_length=5000)


class IngestCreated(Schema):
    id: int
    status: str
    url: str


class BatchStored(Schema):
    accepted: int
    duplicates: int = Field(0, description="events of the batch stored before (by first_seq)")
    unknown: int = Field(
        0, description="events of a type this server does not know (a newer client's): kept out"
    )
    server_seconds: float = Field(description="time the server took to store the batch")


def external_run(request: HttpRequest, run_id: int) -> Run:
    """The external, still running run `run_id` that this user may write to."""
    run = get_run(run_id)
    if run.trigger != Run.Trigger.EXTERNAL:
        raise HttpError(409, f"run {run.id} was not created by ingestion")
    if not permissions.can_stream(request.auth, run):
        raise HttpError(403, f"run {run.id} belongs to another user")
    if run.status != Run.Status.RUNNING:
        raise HttpError(409, f"run {run.id} is {run.status}, not running")
    return run


def clean_args(args: list[str]) -> list[str]:
    """The uploaded command line without its token (an older plugin sent it): the
    --ptd-token option and its value go, and anything that looks like a token is redacted."""
    return [redact_tokens(arg) for arg in strip_token(args)]


@router.post("/runs", response={201: IngestCreated, 400: Detail, 403: Detail, 404: Detail})
def create_external_run(request, payload: IngestRunIn):
    if not permissions.can_stream(request.auth):
        raise HttpError(403, "you may not stream runs")
    suite = find_suite(payload.suite, "suite")
    now = time.time()
    if payload.started is not None and not now - MAX_AGE <= payload.started <= now + CLOCK_SKEW:
        raise HttpError(400, "started: not within the last week (check the machine's clock)")
    snapshot = {
        "workers": payload.workers or 1,
        "engine": "external",
        "dist": "",
        "repeat": 1,
        "reruns": 0,
        "timeout": None,
        "keyword": "",
        "markers": "",
        "extra_args": clean_args(payload.args),
        "host": payload.host or request.META.get("REMOTE_ADDR", ""),
        "started": payload.started,
    }
    run = Run.objects.create(
        suite=suite,
        config_snapshot=snapshot,
        status=Run.Status.RUNNING,
        trigger=Run.Trigger.EXTERNAL,
        user=request.auth,
        commit=payload.commit,
        branch=payload.branch,
        ci_url=payload.ci_url,
        workers=payload.workers or 0,
        started_at=timezone.now(),
    )
    transaction.on_commit(
        lambda: environment.current().publisher.publish(
            run.id, {"type": "status", "status": Run.Status.RUNNING}
        )
    )
    return Status(201, {"id": run.id, "status": run.status, "url": run.get_absolute_url()})


def time_window(run: Run) -> tuple[float, float]:
    """The epoch seconds a test of this run may start and stop in: from the session's start
    (or the run's creation) to now, give or take the clocks' difference."""
    began = (run.started_at or run.created_at).timestamp()
    started = run.config_snapshot.get("started")
    if isinstance(started, int | float):
        began = min(began, started)
    return began - CLOCK_SKEW, time.time() + CLOCK_SKEW


def check_event(index: int, data: dict, window: tuple[float, float]) -> None:
    kind = data["type"]
    if kind == "test":
        for key in ("nodeid", "outcome"):
            if key not in data:
                raise HttpError(400, f"events[{index}].{key}: required for a test event")
    elif kind in ("worker_up", "worker_down") and "worker" not in data:
        raise HttpError(400, f"events[{index}].worker: required for a {kind} event")
    nodeid = data.get("nodeid")
    # A collection error of the whole session has an empty node id; a test never has.
    if nodeid is not None and (nodeid or kind != "collect_error"):
        problem = nodeid_problem(nodeid)
        if problem:
            raise HttpError(400, f"events[{index}].nodeid: {problem}")
    low, high = window
    for key in ("start", "stop"):
        if key in data and not low <= data[key] <= high:
            when = datetime.fromtimestamp(data[key], tz=UTC).isoformat(timespec="seconds")
            raise HttpError(400, f"events[{index}].{key}: {when} is outside the run's time")
    if "start" in data and "stop" in data:
        if data["stop"] < data["start"]:
            raise HttpError(400, f"events[{index}].stop: before its start")
        if data.get("duration", 0) > data["stop"] - data["start"] + DURATION_SLACK:
            raise HttpError(400, f"events[{index}].duration: longer than its stop - start")


@router.post(
    "/runs/{run_id}/events",
    response={200: BatchStored, 400: Detail, 403: Detail, 404: Detail, 409: Detail},
)
def ingest_events(request, run_id: int, payload: EventBatch):
    started = time.perf_counter()
    run = external_run(request, run_id)
    window = time_window(run)
    events = []
    for index, event in enumerate(payload.events):
        data = event.model_dump(exclude_none=True)
        check_event(index, data, window)
        events.append(data)
    skipped = 0
    with transaction.atomic():  # the run's batches one at a time: the count stays right
        if payload.first_seq is None:
            environment.current().sink.handle_events(run.id, events)
        else:
            received = Run.objects.select_for_update().values_list("events_received", flat=True)
            stored = received.get(pk=run.pk)
            if payload.first_seq > stored:
                raise HttpError(
                    409,
                    f"first_seq: {payload.first_seq} leaves a gap after the {stored} events "
                    "stored: send the batches in order",
                )
            end = payload.first_seq + len(events)
            skipped = min(len(events), stored - payload.first_seq)
            events = events[skipped:]
            Run.objects.filter(pk=run.pk).update(events_received=max(stored, end))
            environment.current().sink.handle_events(run.id, events)
    unknown = sum(event["type"] not in EVENT_TYPES for event in events)
    return {
        "accepted": len(events) - unknown,
        "duplicates": skipped,
        "unknown": unknown,
        "server_seconds": round(time.perf_counter() - started, 6),
    }


@router.post(
    "/runs/{run_id}/finish",
    response={200: IngestCreated, 400: Detail, 403: Detail, 404: Detail, 409: Detail},
)
def finish_external_run(request, run_id: int, payload: FinishIn):
    run = external_run(request, run_id)
    low, high = time_window(run)
    if payload.wall_seconds > high - low:
        raise HttpError(400, "wall_seconds: longer than the run has existed")
    finished = environment.current().finish_external(
        run.id, payload.exitstatus, payload.wall_seconds, payload.message
    )
    if finished is None:
        raise HttpError(409, f"run {run.id} is already finished")
    run = finished
    return {"id": run.id, "status": run.status, "url": run.get_absolute_url()}
