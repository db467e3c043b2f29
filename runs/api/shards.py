"""Agents and the shards they run (runs across machines; runner.agent is the other side).

POST /api/agents/heartbeat              an agent is alive: its name, queue, versions
GET  /api/agents                        every agent and its state
POST /api/shards/{id}/start             the agent begins the shard -> {"go": bool}
POST /api/shards/{id}/heartbeat         the shard is alive -> {"stop": bool}
POST /api/shards/{id}/collection        its collection: makes or is checked against the run's
POST /api/shards/{id}/units             completed units in, the next units for its workers out
POST /api/shards/{id}/events            numbered event batches (per shard), as ingestion's
POST /api/shards/{id}/finish            how its pytest ended

Staff tokens only (``permissions.can_serve_as_agent``). Events are validated by ingestion's
schema and checks, and stored by the same sink, with each worker named ``AGENT/gwN``.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from django.db import transaction
from django.db.models import F
from django.shortcuts import get_object_or_404
from django.utils import timezone
from ninja import Field, Router, Schema
from ninja.errors import HttpError
from ninja.security import HttpBearer
from pydantic import ConfigDict

from runs import permissions
from runs.api.auth import BearerToken
from runs.api.common import Detail, Text
from runs.api.intake import EventIn, check_event, time_window
from runs.execution import environment, fleet, fleet_queue, launch
from runs.models import Agent, Run, RunUnit, Shard, hash_token

router = Router(tags=["agents"])
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$"
KEY_PREFIX = "ptdshard_"  # noqa: S105 - a prefix, not a secret


class HeartbeatIn(Schema):
    model_config = ConfigDict(strict=True)

    name: str = Field(pattern=NAME_PATTERN)
    queue: str = Field("default", pattern=NAME_PATTERN)
    workers: int = Field(1, ge=1, le=64)
    python: Text = Field("", max_length=40)
    pytest: Text = Field("", max_length=40)
    ptd: Text = Field("", max_length=40)


class HeartbeatOut(Schema):
    ok: bool
    warning: str


class AgentOut(Schema):
    name: str
    queue: str
    state: str
    workers: int
    host: str
    last_heartbeat: float | None
    seconds_ago: float | None = Field(description="the last heartbeat's age, by this server")
    run: int | None = Field(description="the run it is running a shard of")
    python: str
    pytest: str
    ptd: str
    runs_served: int
    refused: str


class StartIn(Schema):
    pid: int | None = None


class Go(Schema):
    go: bool
    key: str = Field("", description="the shard's own key, for its collection and leases")


class Stop(Schema):
    stop: bool


class CollectionIn(Schema):
    model_config = ConfigDict(strict=True)

    nodeids: list[Text] = Field(max_length=1_000_000)
    groups: list[Text | None] | None = None


class Collected(Schema):
    units: int


class AskIn(Schema):
    model_config = ConfigDict(strict=True)

    worker: str = Field(min_length=1, max_length=20)
    held: int = Field(0, ge=0, le=1_000_000)
    held_seconds: float = Field(0.0, ge=0, le=1e7, allow_inf_nan=False)
    behind: float = Field(
        0.0, ge=0, le=1e7, allow_inf_nan=False, description="seconds held behind the first"
    )


class UnitsIn(Schema):
    model_config = ConfigDict(strict=True)

    asks: list[AskIn] = Field(
        [], max_length=1024, description="every worker that needs units now, served at once"
    )
    worker: str | None = Field(None, max_length=20, description="one worker (or use asks)")
    held: int = Field(0, ge=0, le=1_000_000)
    held_seconds: float = Field(0.0, ge=0, le=1e7, allow_inf_nan=False)
    latency: float = Field(
        0.0,
        ge=0,
        le=60,
        allow_inf_nan=False,
        description="how long the shard's requests take to be answered lately: the units a "
        "worker is given are to outlast the next answer",
    )
    done: list[int] = Field([], max_length=100_000)
    holding: list[int] = Field(
        [],
        max_length=100_000,
        description="the units the shard holds: any other unit leased to this worker was "
        "answered to a request whose answer never arrived, and is sent again",
    )


class UnitOut(Schema):
    id: int
    nodeids: list[str]
    seconds: float


class UnitsOut(Schema):
    units: list[UnitOut] = Field(description="for the one worker of a request without asks")
    leases: dict[str, list[UnitOut]] = Field(description="for each worker of asks")
    state: str
    budget: float = Field(description="the seconds a worker is given to hold behind its item")


class ShardEventIn(EventIn):
    group: Text | None = Field(None, max_length=200)


class ShardBatch(Schema):
    model_config = ConfigDict(strict=True)

    first_seq: int = Field(ge=0, le=2**62)
    events: list[ShardEventIn] = Field(max_length=5000)


class Stored(Schema):
    accepted: int
    duplicates: int


class ShardFinishIn(Schema):
    model_config = ConfigDict(strict=True)

    exitstatus: int | None = Field(None, ge=-1000, le=1000)
    wall_seconds: float = Field(0.0, ge=0, le=1e7, allow_inf_nan=False)
    reason: Text = Field("", max_length=40)
    message: Text = Field("", max_length=5000)


class ShardKey(HttpBearer):
    """A shard's own key (given by /start): only its collection and units, only its shard."""

    def authenticate(self, request, token: str):
        if not token.startswith(KEY_PREFIX):
            return None
        shard = Shard.objects.filter(key_hash=hash_token(token), key_hash__gt="").first()
        return None if shard is None else ShardPrincipal(shard.pk)


@dataclass(frozen=True)
class ShardPrincipal:
    shard_id: int


SHARD_AUTH = [ShardKey(), BearerToken()]


def agent_only(request) -> None:
    if not permissions.can_serve_as_agent(request.auth):
        raise HttpError(403, "only a staff user's token may serve as an agent")


def shard_of(request, shard_id: int, *, active: bool = True) -> Shard:
    if isinstance(request.auth, ShardPrincipal):
        if request.auth.shard_id != shard_id:
            raise HttpError(403, "a shard's key is for that shard only")
    else:
        agent_only(request)
    if not 0 < shard_id < 2**63:
        raise HttpError(404, f"no shard {shard_id}")
    shard = get_object_or_404(Shard.objects.select_related("run", "agent"), pk=shard_id)
    if active and (not shard.is_active or shard.run.status != Run.Status.RUNNING):
        raise HttpError(409, f"shard {shard.id} is {shard.state} (run {shard.run.status})")
    return shard


def alive(shard: Shard) -> None:
    now = time.time()
    Shard.objects.filter(pk=shard.pk).update(last_heartbeat=now)
    Agent.objects.filter(pk=shard.agent_id).update(last_heartbeat=now)


HEARTBEAT_FIELDS = (
    "queue", "workers", "python_version", "pytest_version", "ptd_version", "host",
    "last_heartbeat",
)  # fmt: skip


@router.post("/agents/heartbeat", response={200: HeartbeatOut, 403: Detail})
def heartbeat(request, payload: HeartbeatIn):
    agent_only(request)
    agent, _ = Agent.objects.get_or_create(name=payload.name)
    agent.queue = payload.queue
    agent.workers = payload.workers
    agent.python_version = payload.python
    agent.pytest_version = payload.pytest
    agent.ptd_version = payload.ptd
    agent.host = request.META.get("REMOTE_ADDR", "")[:200]
    agent.last_heartbeat = time.time()
    # Only what a heartbeat says: a full save would write back the runs_served it read, over
    # a shard's start counted meanwhile (a lost update, seen on PostgreSQL).
    agent.save(update_fields=[*HEARTBEAT_FIELDS])
    problem = agent.version_problem(fleet.ptd_version())
    warning = f"no shards will be sent to this agent: {problem}" if problem else ""
    return {"ok": True, "warning": warning}


@router.get("/agents", response=list[AgentOut])
def agent_list(request):
    ours = fleet.ptd_version()
    return [a.to_dict(ours) for a in Agent.objects.all()]


@router.post("/shards/{shard_id}/start", response={200: Go, 403: Detail, 404: Detail, 409: Detail})
def shard_start(request, shard_id: int, payload: StartIn):
    shard = shard_of(request, shard_id)
    if shard.state != Shard.State.QUEUED:  # a redelivered task: the shard ran already
        return {"go": False}
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    Shard.objects.filter(pk=shard.pk).update(
        state=Shard.State.COLLECTING,
        started_at=timezone.now(),
        last_heartbeat=time.time(),
        key_hash=hash_token(key),
    )
    Agent.objects.filter(pk=shard.agent_id).update(runs_served=F("runs_served") + 1)
    publish_machines(shard.run)
    return {"go": True, "key": key}


@router.post("/shards/{shard_id}/heartbeat", response={200: Stop, 403: Detail, 404: Detail})
def shard_heartbeat(request, shard_id: int):
    shard = shard_of(request, shard_id, active=False)
    if not shard.is_active or shard.run.status != Run.Status.RUNNING:
        return {"stop": True}
    alive(shard)
    return {"stop": False}


@router.post(
    "/shards/{shard_id}/collection",
    response={200: Collected, 400: Detail, 403: Detail, 404: Detail, 409: Detail},
    auth=SHARD_AUTH,
)
def shard_collection(request, shard_id: int, payload: CollectionIn):
    shard = shard_of(request, shard_id)
    if payload.groups is not None and len(payload.groups) != len(payload.nodeids):
        raise HttpError(400, "groups: one (or null) per node id")
    durations = launch.duration_history(shard.run.suite)
    try:
        units = fleet_queue.accept_collection(shard, payload.nodeids, payload.groups, durations)
    except fleet_queue.CollectionMismatch as exc:
        Shard.objects.filter(pk=shard.pk).update(
            state=Shard.State.FAILED, message=str(exc)[:2000], finished_at=timezone.now()
        )
        environment.current().run_queued.set()  # the dispatcher ends the run now
        raise HttpError(409, str(exc)) from None
    Shard.objects.filter(pk=shard.pk).update(state=Shard.State.RUNNING)
    alive(shard)
    publish_machines(shard.run)
    return {"units": units}


@router.post(
    "/shards/{shard_id}/units",
    response={200: UnitsOut, 400: Detail, 403: Detail, 404: Detail, 409: Detail},
    auth=SHARD_AUTH,
)
def shard_units(request, shard_id: int, payload: UnitsIn):
    shard = shard_of(request, shard_id)
    asks = [fleet_queue.Ask(a.worker, a.held, a.held_seconds, a.behind) for a in payload.asks]
    if payload.worker:
        asks.append(fleet_queue.Ask(payload.worker, payload.held, payload.held_seconds))
    names = [a.worker for a in asks]
    if len(set(names)) != len(names):  # one answer per worker: a second ask's units would be lost
        raise HttpError(400, "asks: name each worker once (and not also as worker)")
    with transaction.atomic():  # all or nothing: a failed request leases nothing
        # One request of a shard at a time (PostgreSQL): a resend that overtook its original
        # still being answered would otherwise see no unanswered units, and lease again.
        Shard.objects.select_for_update().filter(pk=shard.pk).first()
        fleet_queue.complete(shard, payload.done)
        queued = fleet_queue.queued_seconds(shard.run_id)  # read once for both below
        limit = fleet_queue.budget(shard.run, payload.latency, queued)
        leases: dict[str, list[RunUnit]] = {}
        if asks:
            leases = fleet_queue.unanswered(shard, [a.worker for a in asks], payload.holding)
            others = [a for a in asks if a.worker not in leases]
            if others:
                leases.update(fleet_queue.lease_many(shard, others, payload.latency, queued))
        state = fleet_queue.queue_state(shard)  # "more" only while units are queued

    def out(units: list[RunUnit]) -> list[dict]:
        return [{"id": u.id, "nodeids": u.nodeids, "seconds": u.seconds} for u in units]

    return {
        "units": out(leases.get(payload.worker, [])) if payload.worker else [],
        "leases": {a.worker: out(leases.get(a.worker, [])) for a in payload.asks},
        "state": state,
        "budget": limit,
    }


@router.post(
    "/shards/{shard_id}/events",
    response={200: Stored, 400: Detail, 403: Detail, 404: Detail, 409: Detail},
)
def shard_events(request, shard_id: int, payload: ShardBatch):
    shard = shard_of(request, shard_id)
    window = time_window(shard.run)
    prefix = f"{shard.agent.name}/"
    events = []
    for index, event in enumerate(payload.events):
        data = event.model_dump(exclude_none=True)
        check_event(index, data, window)
        if data["type"] in ("session_start", "session_finish"):
            data.pop("workers", None)  # the run's workers are K x N, not one shard's N
        if "worker" in data:
            data["worker"] = prefix + data["worker"]
        events.append(data)
    with transaction.atomic():  # one batch of a shard at a time: its count stays right
        stored = (
            Shard.objects.select_for_update()
            .values_list("events_received", flat=True)
            .get(pk=shard.pk)
        )
        if payload.first_seq > stored:
            raise HttpError(409, f"first_seq: {payload.first_seq} leaves a gap after {stored}")
        skipped = min(len(events), stored - payload.first_seq)
        events = events[skipped:]
        Shard.objects.filter(pk=shard.pk).update(
            events_received=max(stored, payload.first_seq + len(payload.events))
        )
        environment.current().sink.handle_events(shard.run_id, events)
    alive(shard)
    return {"accepted": len(events), "duplicates": skipped}


@router.post("/shards/{shard_id}/finish", response={200: Go, 403: Detail, 404: Detail})
def shard_finish(request, shard_id: int, payload: ShardFinishIn):
    shard = shard_of(request, shard_id, active=False)
    if not shard.is_active:
        return {"go": False}
    ok = not payload.reason and payload.exitstatus in (0, 1, 5)
    message = payload.message
    if not ok and not message:
        message = f"pytest ended with {payload.reason or f'exit code {payload.exitstatus}'}"
    if not ok:
        message = f"machine {shard.agent.name}: {message}"
    state = Shard.State.DONE if ok else Shard.State.FAILED
    if shard.run.status != Run.Status.RUNNING:  # stopped because the run was cancelled
        state = Shard.State.CANCELLED
    Shard.objects.filter(pk=shard.pk, state__in=Shard.ACTIVE).update(
        state=state,
        exit_code=payload.exitstatus,
        wall_seconds=payload.wall_seconds,
        message="" if ok else message[:2000],
        finished_at=timezone.now(),
    )
    publish_machines(shard.run)
    environment.current().run_queued.set()
    return {"go": True}


def publish_machines(run: Run) -> None:
    fleet.publish_machines(environment.current().publisher, run)
