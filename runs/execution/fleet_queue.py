"""The shared queue of a run over several machines, in the database.

Why the dashboard serves it (``POST /api/shards/{id}/units``) rather than a Redis list the
shards pop: the dashboard already owns what the order comes from (the suite's duration
history) and what decides a lost machine's fate (the results it stored), so requeueing is one
transaction beside the results, whatever the broker (Redis or RabbitMQ) and with no second
store to keep in step; a shard's controller needs only HTTP from the suite's interpreter. A
lease costs one request per worker's refill (a few ms; small tests travel in batches).

The first shard to report its collection makes the queue: units (tests, or groups under
loadscope/loadfile/loadgroup: ``scheduling.core.unit_key``) longest first, estimated from
history (unknown tests at the mean). Later shards must have collected the same node ids.
A lease follows the local core's rule (``LPTScheduler.next_for_worker``): a worker holding
nothing gets the longest unit; one holding a single item gets a next one, the shortest when
what it holds is long; small units are added while they fit a budget that shrinks with the
work left. Claims are conditional updates, so two shards never lease the same unit.
"""

from __future__ import annotations

import time

from _ptd_inrun.scheduling.core import estimate_durations, unit_key
from django.db import transaction
from django.db.models import Sum

from runs.models import Run, RunUnit, Shard, TestResult

# As the local core's (scheduling.core), but a higher floor: a lease is an HTTP round trip
# during which the shard's controller waits, so short tests travel a few more at a time.
MIN_BUDGET, MAX_BUDGET, BUDGET_SHARE = 0.2, 0.5, 8.0
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


def budget(run: Run) -> float:
    queued = RunUnit.objects.filter(run=run, state=RunUnit.State.QUEUED).aggregate(
        s=Sum("seconds")
    )["s"]
    share = (queued or 0.0) / (max(1, run.workers) * BUDGET_SHARE)
    return max(MIN_BUDGET, min(MAX_BUDGET, share))


def _claim(shard: Shard, worker: str, shortest: bool) -> RunUnit | None:
    queued = RunUnit.objects.filter(run_id=shard.run_id, state=RunUnit.State.QUEUED)
    order = ("seconds", "-id") if shortest else ("-seconds", "id")
    for _ in range(CLAIM_TRIES):
        unit = queued.order_by(*order).first()
        if unit is None:
            return None
        taken = RunUnit.objects.filter(pk=unit.pk, state=RunUnit.State.QUEUED).update(
            state=RunUnit.State.LEASED, shard=shard, worker=worker[:20], leased_at=time.time()
        )
        if taken:
            return unit
    return None


def lease(shard: Shard, worker: str, held: int, held_seconds: float) -> list[RunUnit]:
    """The units for ``worker`` of ``shard``, which holds ``held`` items (the first of an
    estimated ``held_seconds``)."""
    limit = budget(shard.run)
    taken: list[RunUnit] = []
    if held == 0:
        unit = _claim(shard, worker, shortest=False)
        if unit is None:
            return []
        taken.append(unit)
        held = len(unit.nodeids)
        held_seconds = unit.seconds / max(1, held)
    holding_long = held_seconds > limit
    if held == 1:  # it runs its item only once it knows the next one
        unit = _claim(shard, worker, shortest=holding_long)
        if unit is not None:
            taken.append(unit)
    if holding_long:
        return taken
    behind = sum(u.seconds for u in taken) - held_seconds
    if behind < limit / 2:
        while True:
            head = (
                RunUnit.objects.filter(run_id=shard.run_id, state=RunUnit.State.QUEUED)
                .order_by("-seconds", "id")
                .values_list("seconds", flat=True)
                .first()
            )
            if head is None or behind + head > limit:
                break
            unit = _claim(shard, worker, shortest=False)
            if unit is None:
                break
            taken.append(unit)
            behind += unit.seconds
    return taken


def unanswered(shard: Shard, worker: str, holding: list[int]) -> list[RunUnit]:
    """Units leased to this worker that its controller does not hold: the answer to an
    earlier request was lost (a timeout, then the request sent again). Sent once more."""
    return list(
        RunUnit.objects.filter(shard=shard, worker=worker[:20], state=RunUnit.State.LEASED)
        .exclude(pk__in=holding)
        .order_by("leased_at", "id")
    )


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
