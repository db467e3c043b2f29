"""The shared queue of a run over several machines, in the database.

Why the dashboard serves it (``POST /api/shards/{id}/units``) rather than a Redis list the
shards pop: the dashboard already owns what the order comes from (the suite's duration
history) and what decides a lost machine's fate (the results it stored), so requeueing is one
transaction beside the results, whatever the broker (Redis or RabbitMQ) and with no second
store to keep in step; a shard's controller needs only HTTP from the suite's interpreter.

The first shard to report its collection makes the queue: units (tests, or groups under
loadscope/loadfile/loadgroup: ``scheduling.core.unit_key``) longest first, estimated from
history (unknown tests at the mean). Later shards must have collected the same node ids.

A request asks for every worker of its shard that needs units at that moment (``Ask``;
``fork.remote`` sends one at a time, without waiting for it), and each is served by the
local core's rule (``LPTScheduler.next_for_worker``): a worker holding nothing gets the
longest unit; one holding a single item gets a next one, the shortest when what it holds is
long, and so does one holding two (it needs a third before its running item ends: its answer
takes a round trip, the local core's a pipe's); small units are added while the work behind
its running item fits a budget that shrinks with the work left but outlasts the shard's next
answer (``budget``: each request names how long answers take; a worker asked for ahead,
holding more, only gets those). The workers holding least are served first. One request
reads the queued units once (longest first, a page at a time, and the shortest few) and
plans every worker's units in memory; claims are then one conditional update per worker
(``state = queued``), so two shards never lease the same unit: a unit another transaction
claimed meanwhile is left out, and a worker down to its last item that got nothing is
planned again.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

from _ptd_inrun.scheduling.core import estimate_durations, unit_key
from django.db import connection, transaction
from django.db.models import Q, Sum

from runs.models import Run, RunUnit, Shard, TestResult

# As the local core's (scheduling.core), but a higher floor: short tests travel a few more at
# a time. And what a worker holds must outlast the next answer: a shard names how long its
# requests take (one on its way at a time: a worker asked for may wait for two answers), and
# the budget is at least AHEAD_FACTOR times that, up to AHEAD_CAP and to AHEAD_SHARE times a
# worker's share of the work left (the tail). From a model of bench_agents (3 x 4 workers,
# the answer times measured there; no start-up skew or CPU contention), engine wall over
# the bound: factor 0 -> 1.50, 4 -> 1.28, 8 -> 1.15 (1.21 without the share cap), 10 -> 1.13.
MIN_BUDGET, MAX_BUDGET, BUDGET_SHARE = 0.2, 0.5, 8.0
AHEAD_FACTOR, AHEAD_CAP, AHEAD_SHARE = 8.0, 1.0, 2.0
CLAIM_TRIES = 20


class CollectionMismatch(Exception):
    """A shard collected other tests than the run's: its message names the first one."""


def first_difference(ours: list[str], theirs: list[str]) -> str:
    mine, other = set(ours), set(theirs)
    missing = sorted(other - mine)
    extra = sorted(mine - other)
    if extra and (not missing or extra[0] < missing[0]):
        return f"{extra[0]!r} was collected here, not by the run's other machines"
    if missing:
        return f"{missing[0]!r} was collected by the run's other machines, not here"
    return "the same tests, collected a different number of times"


def accept_collection(shard: Shard, nodeids: list[str], groups: list | None, durations) -> int:
    """Make the run's queue from the first collection, or check this one against it.
    Returns the number of units; raises CollectionMismatch."""
    run = shard.run
    with transaction.atomic():
        Run.objects.select_for_update().filter(pk=run.pk).first()  # one collection at a time
        existing = list(RunUnit.objects.filter(run=run).values_list("nodeids", flat=True))
        if existing:
            known = [n for unit in existing for n in unit]
            if sorted(set(known)) != sorted(set(nodeids)) or len(set(nodeids)) != len(nodeids):
                name = shard.agent.name
                raise CollectionMismatch(
                    f"machine {name}: different tests were collected than on the run's other "
                    f"machines: {first_difference(nodeids, known)}"
                )
            return len(existing)
        mode = run.config_snapshot.get("dist") or "load"
        estimates = estimate_durations(nodeids, durations)
        units: dict[str, RunUnit] = {}
        for index, nodeid in enumerate(nodeids):
            group = groups[index] if groups else None
            key = unit_key(nodeid, mode, group)
            unit = units.get(key)
            if unit is None:
                unit = units[key] = RunUnit(run=run, key=key[:1000], nodeids=[], seconds=0.0)
            unit.nodeids.append(nodeid)
            unit.seconds += estimates[index]
        RunUnit.objects.bulk_create(sorted(units.values(), key=lambda u: -u.seconds))
        Run.objects.filter(pk=run.pk).update(collected=len(nodeids))
        return len(units)


@dataclass(frozen=True)
class Ask:
    """A worker that needs units: it holds ``held`` items, the one it runs estimated at
    ``held_seconds``, those queued behind it at ``behind`` seconds."""

    worker: str
    held: int = 0
    held_seconds: float = 0.0
    behind: float = 0.0


class _Queued:
    """A run's queued units as one request sees them: read longest first a page at a time,
    with the shortest few beside, and taken in memory; ``lease_many`` then claims them in the
    database (conditional updates: a unit another request took meanwhile is not given)."""

    def __init__(self, run_id: int, shortest: int) -> None:
        self.page = 16 * (shortest + 1)  # a request takes a few units per worker
        self.queued = RunUnit.objects.filter(run_id=run_id, state=RunUnit.State.QUEUED)
        self.head: deque[tuple[int, float, list]] = deque()
        self.after: tuple[float, int] | None = None  # the last row read, longest first
        self.exhausted = False
        self.shortest = shortest
        self.tail: deque[tuple[int, float, list]] | None = None
        self.taken: set[int] = set()

    def _rows(self, query, limit: int) -> list[tuple[int, float, list]]:
        return list(query.values_list("id", "seconds", "nodeids")[:limit])

    def longest(self) -> tuple[int, float, list] | None:
        while True:
            while self.head and self.head[0][0] in self.taken:
                self.head.popleft()
            if self.head or self.exhausted:
                return self.head[0] if self.head else None
            query = self.queued.order_by("-seconds", "id")
            if self.after is not None:
                seconds, pk = self.after
                query = query.filter(Q(seconds__lt=seconds) | Q(seconds=seconds, id__gt=pk))
            rows = self._rows(query, self.page)
            self.exhausted = len(rows) < self.page
            self.page *= 4
            if rows:
                self.after = (rows[-1][1], rows[-1][0])
            self.head.extend(rows)

    def shortest_one(self) -> tuple[int, float, list] | None:
        for _ in range(2):
            if self.tail is None:
                query = self.queued.exclude(pk__in=self.taken).order_by("seconds", "-id")
                self.tail = deque(self._rows(query, self.shortest + 1))
            while self.tail and self.tail[0][0] in self.taken:
                self.tail.popleft()
            if self.tail:
                return self.tail[0]
            self.tail = None  # all taken here: read the few shortest again
        return None

    def take(self, row: tuple[int, float, list] | None) -> RunUnit | None:
        if row is None:
            return None
        self.taken.add(row[0])
        return RunUnit(id=row[0], seconds=row[1], nodeids=row[2], state=RunUnit.State.LEASED)


def queued_seconds(run_id: int) -> float:
    """The estimated seconds of the run's units still queued."""
    queued = RunUnit.objects.filter(run_id=run_id, state=RunUnit.State.QUEUED)
    return queued.aggregate(s=Sum("seconds"))["s"] or 0.0


def _budget(queued: float, workers: int, latency: float) -> float:
    per_worker = max(0.0, queued) / max(1, workers)
    ahead = min(AHEAD_CAP, AHEAD_FACTOR * latency, AHEAD_SHARE * per_worker)
    return max(MIN_BUDGET, min(MAX_BUDGET, per_worker / BUDGET_SHARE), ahead)


def budget(run: Run, latency: float = 0.0, queued: float | None = None) -> float:
    """The seconds a worker may hold behind its running item: shrinking with the work left
    (``queued``, read when not given; the tail stays balanced), but outlasting the shard's
    next answer (``latency``)."""
    queued = queued_seconds(run.pk) if queued is None else queued
    return _budget(queued, run.workers or 1, latency)


def _plan(queue: _Queued, ask: Ask, limit: float) -> list[RunUnit]:
    """The local core's rule (``LPTScheduler.next_for_worker``) for one worker."""
    taken: list[RunUnit] = []
    held, first, behind = ask.held, ask.held_seconds, ask.behind
    if held == 0:
        unit = queue.take(queue.longest())
        if unit is None:
            return []
        taken.append(unit)
        held = len(unit.nodeids)
        first = unit.seconds / max(1, held)
        behind = unit.seconds - first
    holding_long = first > limit
    # A worker starts its next item only once it knows the one after (fork.worker): down to
    # one item it waits for the next; holding two, it must know a third before its running
    # item ends, however long the second (unless it runs a long one: asked again after it).
    # What waits behind a long item is the shortest there is.
    if held == 1 or (held == 2 and not holding_long):
        after_long = holding_long if held == 1 else behind > limit  # (behind: the second)
        unit = queue.take(queue.shortest_one() if after_long else queue.longest())
        if unit is not None:
            taken.append(unit)
            behind += unit.seconds
    if holding_long or behind >= limit / 2:
        return taken
    while (head := queue.longest()) is not None and behind + head[1] <= limit:
        taken.append(queue.take(head))
        behind += head[1]
    return taken


def lease_many(
    shard: Shard, asks: list[Ask], latency: float = 0.0, queued: float | None = None
) -> dict[str, list]:
    """The units for each worker of ``shard`` that asks, in one pass: the queued units read
    once, the workers holding least served first, one conditional update per worker. Each
    worker's budget counts what this request planned for the others already: one request
    for several workers takes no more of the tail than as many requests would. ``queued``:
    ``queued_seconds`` of the run, if the caller has it."""
    queued = queued_seconds(shard.run_id) if queued is None else queued
    workers = shard.run.workers or 1
    out: dict[str, list[RunUnit]] = {ask.worker: [] for ask in asks}
    pending = sorted(asks, key=lambda a: (min(a.held, 2), a.behind))
    for _ in range(CLAIM_TRIES):
        queue = _Queued(shard.run_id, shortest=len(pending))
        plans, planned = [], 0.0
        for ask in pending:
            units = _plan(queue, ask, _budget(queued - planned, workers, latency))
            planned += sum(u.seconds for u in units)
            plans.append((ask, units))
        stamp = time.time()
        free = _lock_in_order([u.id for _, units in plans for u in units])
        short = []
        for ask, units in plans:
            ids = [u.id for u in units]
            if not ids:
                continue
            worker = ask.worker[:20]
            mine = RunUnit.objects.filter(
                pk__in=[i for i in ids if free is None or i in free], state=RunUnit.State.QUEUED
            )
            fields = {"shard": shard, "worker": worker, "leased_at": stamp}
            if mine.update(state=RunUnit.State.LEASED, **fields) < len(ids):
                # Another request claimed some meanwhile (not under SQLite's immediate
                # transactions): this worker keeps what it got, in its planned order.
                got = set(RunUnit.objects.filter(pk__in=ids, **fields).values_list("pk", flat=True))
                units = [u for u in units if u.id in got]
                if not units and ask.held < 2:
                    short.append(ask)
            out[ask.worker] = units
        if not short:
            break
        pending = short
    return out


def _lock_in_order(ids: list[int]) -> set[int] | None:
    """PostgreSQL: lock the planned rows still queued, in id order, skipping those another
    request holds (two requests updating overlapping rows worker by worker, in other orders,
    could deadlock). None where transactions are serial anyway (SQLite's immediate ones)."""
    if not ids or not connection.features.has_select_for_update_skip_locked:
        return None
    rows = RunUnit.objects.select_for_update(skip_locked=True).filter(
        pk__in=ids, state=RunUnit.State.QUEUED
    )
    return set(rows.order_by("pk").values_list("pk", flat=True))


def lease(shard: Shard, worker: str, held: int, held_seconds: float) -> list[RunUnit]:
    """The units for ``worker`` of ``shard``, which holds ``held`` items (the first of an
    estimated ``held_seconds``)."""
    return lease_many(shard, [Ask(worker, held, held_seconds)])[worker]


def unanswered(shard: Shard, workers: list[str], holding: list[int]) -> dict[str, list]:
    """Units leased to these workers that their controller does not hold: the answer to an
    earlier request was lost (a timeout, then the request sent again). Sent once more."""
    names = {w[:20]: w for w in workers}
    out: dict[str, list[RunUnit]] = {}
    lost = (
        RunUnit.objects.filter(shard=shard, worker__in=list(names), state=RunUnit.State.LEASED)
        .exclude(pk__in=holding)
        .order_by("leased_at", "id")
    )
    for unit in lost:
        out.setdefault(names[unit.worker], []).append(unit)
    return out


def complete(shard: Shard, unit_ids: list[int]) -> None:
    if unit_ids:
        RunUnit.objects.filter(pk__in=unit_ids, shard=shard, state=RunUnit.State.LEASED).update(
            state=RunUnit.State.DONE
        )


def queue_state(shard: Shard) -> str:
    """ "more" (units queued), "wait" (other machines hold the last ones) or "finished"."""
    units = RunUnit.objects.filter(run_id=shard.run_id)
    if units.filter(state=RunUnit.State.QUEUED).exists():
        return "more"
    if units.filter(state=RunUnit.State.LEASED).exclude(shard=shard).exists():
        return "wait"
    # A unit another machine completed counts once its results are stored: were that machine
    # lost first, its unreported tests come back to the queue (lose_shard).
    others = Shard.objects.filter(run_id=shard.run_id, state__in=Shard.ACTIVE).exclude(pk=shard.pk)
    if others.exists():
        done = {
            n
            for unit in units.filter(state=RunUnit.State.DONE).values_list("nodeids", flat=True)
            for n in unit
        }
        stored = (
            TestResult.objects.filter(run_id=shard.run_id)
            .exclude(outcome="rerun")
            .values("nodeid")
            .distinct()
            .count()
        )
        if stored < len(done):
            return "wait"
    return "finished"


def lose_shard(shard: Shard, message: str, sink) -> int:
    """A shard whose machine fell silent: what it leased and has no final result here goes
    back to the queue, and the test each of its workers was running is recorded as a crashed
    attempt on that machine. Returns the number of tests requeued."""
    agent = shard.agent.name
    with transaction.atomic():
        claimed = Shard.objects.filter(pk=shard.pk, state__in=Shard.ACTIVE).update(
            state=Shard.State.LOST, message=message[:2000], finished_at=_now()
        )
        if not claimed:
            return 0
        final = set(
            TestResult.objects.filter(run_id=shard.run_id, worker__startswith=f"{agent}/")
            .exclude(outcome="rerun")
            .values_list("nodeid", flat=True)
        )
        units = list(
            RunUnit.objects.filter(
                shard=shard, state__in=[RunUnit.State.LEASED, RunUnit.State.DONE]
            ).order_by("leased_at", "id")
        )
        requeued: list[RunUnit] = []
        crashed: dict[str, tuple[str, float]] = {}
        for unit in units:
            missing = [n for n in unit.nodeids if n not in final]
            if unit.state == RunUnit.State.LEASED and missing and unit.worker not in crashed:
                crashed[unit.worker] = (missing[0], unit.leased_at or time.time())
            if missing:
                share = unit.seconds * len(missing) / max(1, len(unit.nodeids))
                requeued.append(
                    RunUnit(run_id=shard.run_id, key=unit.key, nodeids=missing, seconds=share)
                )
        RunUnit.objects.filter(pk__in=[u.pk for u in units]).update(state=RunUnit.State.LOST)
        RunUnit.objects.bulk_create(requeued)
        now = time.time()
        events = [
            {
                "type": "test",
                "nodeid": nodeid,
                "worker": f"{agent}/{worker or 'gw0'}",
                "outcome": "crashed",
                "when": "call",
                "start": min(started, now),
                "stop": now,
                "duration": 0.0,
                "longrepr": f"{message}: it was running this test; the test runs again on "
                "another machine.",
            }
            for worker, (nodeid, started) in sorted(crashed.items())
        ]
        if events:
            sink.handle_events(shard.run_id, events)
    return sum(len(u.nodeids) for u in requeued)


def _now():
    from django.utils import timezone

    return timezone.now()
