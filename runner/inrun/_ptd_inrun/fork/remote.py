"""A shard of a run over several machines: the fork engine fed from the run's shared queue.

The dashboard holds one queue of units (tests, or groups under loadscope/loadfile/loadgroup)
per run, longest first from its history. This controller sends its collection once (the
dashboard refuses a shard whose tests differ from the run's, naming the first differing one),
then asks for units for its workers and reports the units they completed. When the queue is
empty its workers run what they hold and end; the controller then waits while other machines
still hold units (one lost, its units come back: workers are forked again to take them) and
ends once every unit of the run is done.

Asking costs the controller no waiting. One request at a time is on its way (``shardhttp``:
sent, its socket watched by the controller's loop beside the workers' pipes), and it asks
for every worker that needs units at that moment, so a request serves several refills and
the workers' results are read while the dashboard answers. A worker is asked for ahead: as
soon as it is down to two items, or holds little behind the one it runs (under half the
dashboard's budget), not once it is down to its last item, which it runs only once it knows
the next one (``fork.worker``): with an answer in before the running item ends, it never
waits. The dashboard applies the local core's rule (``scheduling.core``) to each worker it
is asked for, with a budget that outlasts the next answer: each request names how long
answers have taken lately (``latency``, a running average).

No socket is inherited by a worker: a request on its way is finished before any fork. The
token is taken out of ``os.environ`` when the engine is made, before any worker is forked.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import pytest

from ..scheduling.core import LPTScheduler
from .controller import ForkEngine
from .shardhttp import Pending, QueueRefused, ShardQueue

WAIT_POLL = 0.2  # seconds between asks while other machines hold the last units
BUDGET = 0.5  # the dashboard's budget until it names it (fleet_queue.MAX_BUDGET)
LATENCY_WEIGHT = 0.25  # of the last answer's wait in the running figure sent along

__all__ = ["QueueRefused", "RemoteForkEngine", "RemoteScheduler", "ShardQueue"]


class RemoteScheduler(LPTScheduler):
    """The local core, whose queue holds only what a crashed worker gave back (or an answer
    for a worker gone meanwhile); everything else comes from the dashboard."""

    # "Nothing queued" here may mean only that one worker was told "nothing for now" by the
    # dashboard: the others go on leasing, so only that one is shut down (and none holds back
    # an item for the others: the dashboard leases each its own).
    shuts_all_down = False

    def __init__(
        self, collection: Sequence[str], mode: str, groups: Any, remote: ShardQueue
    ) -> None:
        super().__init__(collection, {}, mode, groups=groups)
        self.queue.clear()
        self.queued_seconds = 0.0
        self.remote = remote
        self.index_of = {nodeid: i for i, nodeid in enumerate(self.collection)}
        self.unit_of: dict[int, int] = {}  # index -> the dashboard's unit id
        self.left: dict[int, set[int]] = {}  # unit id -> indices not complete yet
        self.done: list[int] = []  # completed units not reported yet
        self.sent_done: list[int] = []  # those the last request reported
        self.server_empty = False
        self.refused = ""  # the dashboard's word when it stopped answering this shard
        self.pending: Pending | None = None
        self.asking: list[dict] = []  # what the request on its way asks for
        self.arrived: dict[str, list[int]] = {}  # answered, not sent to the worker yet
        self.asked: dict[str, tuple[int, ...]] = {}  # what a worker held when told "nothing"
        self.budget_seconds = BUDGET
        self.latency = 0.0  # how long answers take, lately (the dashboard sizes leases by it)

    @property
    def has_queued(self) -> bool:
        return bool(self.queue) or not self.server_empty

    def _body(self, asks: list[dict]) -> dict:
        self.sent_done, self.done = self.done, []
        return {"asks": asks, "done": self.sent_done, "holding": sorted(self.left),
                "latency": round(self.latency, 4)}  # fmt: skip

    def poll(self) -> str:
        """Report what is done; the run's queue: "more", "wait" or "finished"."""
        self.settle()
        body = self._body([])
        try:
            return str(self.remote.post("/units", body).get("state", "finished"))
        except QueueRefused as exc:
            self.done = self.sent_done + self.done
            self.refused = str(exc)
            return "refused"

    # -- asking ----------------------------------------------------------------------------

    def _ask_for(self, worker: str) -> dict | None:
        """What to ask for ``worker`` now, if anything."""
        state = self.workers[worker]
        held = state.in_flight
        if worker in self.arrived:
            return None
        if len(held) <= 1:
            return {"worker": worker, "held": len(held),
                    "held_seconds": self.estimates[held[0]] if held else 0.0}  # fmt: skip
        first = self.estimates[held[0]]
        behind = sum(self.estimates[i] for i in held[1:])
        if first > self.budget_seconds:
            return None  # a long item nothing should wait behind: asked for once it ends
        if len(held) > 2 and behind >= self.budget_seconds / 2:
            return None  # it holds enough (holding two, it needs a third before its item ends)
        if self.asked.get(worker) == tuple(held):
            return None  # nothing fitted its budget when it held just this
        return {"worker": worker, "held": len(held), "held_seconds": first, "behind": behind}

    def pump(self) -> bool:
        """Send a request for every worker that needs units, unless one is on its way.
        True when an answer came in already (the request had to be sent waiting)."""
        if self.pending is not None or self.server_empty or self.refused:
            return False
        asks = [ask for w in self.workers if (ask := self._ask_for(w)) is not None]
        if not asks:
            return False
        self.asking = asks
        body = self._body(asks)
        self.pending = self.remote.start("/units", body)
        if self.pending is None:
            self._answer(body)
            return True
        return False

    def settle(self) -> bool:
        """Take in the answer of the request on its way (waiting for it). True if there was
        one: the workers it named have units to be sent."""
        pending, self.pending = self.pending, None
        if pending is None:
            return False
        self._answer(pending.body, pending)
        return True

    def _answer(self, body: dict, pending: Pending | None = None) -> None:
        began = pending.sent if pending is not None else time.monotonic()
        try:
            if pending is not None:
                answer = self.remote.finish(pending)
            else:
                answer = self.remote.post("/units", body)
        except QueueRefused as exc:
            self.done = self.sent_done + self.done
            self.refused, self.server_empty = str(exc), True
            return
        took = min(10.0, time.monotonic() - began)
        weight = LATENCY_WEIGHT if self.latency else 1.0
        self.latency = weight * took + (1 - weight) * self.latency
        self.budget_seconds = float(answer.get("budget", self.budget_seconds))
        leases = answer.get("leases") or {}
        starving = False
        for ask in self.asking:
            worker = ask["worker"]
            sent = self._given(worker, leases.get(worker) or [])
            if not sent and ask["held"] <= 1:
                starving = True  # nothing for a worker down to its last item: none left
            elif not sent and worker in self.workers:
                self.asked[worker] = tuple(self.workers[worker].in_flight)
        self.asking = []
        # Nothing queued on the dashboard any more: the workers must be told so now
        # (shutdown) or they would wait, holding their last item, for a next one.
        if starving or answer.get("state") != "more":
            self.server_empty = True

    def _given(self, worker: str, units: list[dict]) -> list[int]:
        state = self.workers.get(worker)
        sent: list[int] = []
        for unit in units:
            indices = [self.index_of[n] for n in unit["nodeids"] if n in self.index_of]
            share = float(unit.get("seconds", 0.0)) / max(1, len(indices))
            for index in indices:
                self.estimates[index] = share
                self.unit_of[index] = int(unit["id"])
            self.left[int(unit["id"])] = set(indices)
            sent += indices
        if state is None:  # gone (crashed) meanwhile: another worker runs them
            self.requeue(sent)
            return sent
        state.in_flight.extend(sent)
        if sent:
            self.arrived.setdefault(worker, []).extend(sent)
        return sent

    # -- the core's side -------------------------------------------------------------------

    def next_for_worker(self, worker: str) -> list[int]:
        """What the dashboard answered for ``worker``, or what the local queue holds (a
        crashed worker's items); asking is ``pump``'s."""
        if worker not in self.workers:
            return []
        sent = self.arrived.pop(worker, [])
        if self.queue:
            sent += super().next_for_worker(worker)
        return sent

    def _completed(self, index: int) -> None:
        unit = self.unit_of.get(index)
        left = self.left.get(unit) if unit is not None else None
        if left is None or index not in left:
            return
        left.discard(index)
        if not left:
            del self.left[unit]
            self.done.append(unit)

    def mark_complete(self, worker: str, index: int) -> None:
        super().mark_complete(worker, index)
        self._completed(index)

    def remove_worker(self, worker: str) -> list[int]:
        self.arrived.pop(worker, None)  # in its in_flight: requeued by the core
        self.asked.pop(worker, None)
        unfinished = super().remove_worker(worker)
        if unfinished:  # the crash item is reported now; mark_pending runs it again
            self._completed(unfinished[0])
        return unfinished

    def mark_pending(self, index: int) -> None:
        super().mark_pending(index)
        unit = self.unit_of.get(index)
        if unit is not None:
            self.left.setdefault(unit, set()).add(index)
            if unit in self.done:
                self.done.remove(unit)


class RemoteForkEngine(ForkEngine):
    def __init__(self, config: pytest.Config, workers: int, mode: str) -> None:
        super().__init__(config, workers, mode)
        self.remote = ShardQueue(
            os.environ.pop("PTD_SHARD_URL"), os.environ.pop("PTD_SHARD_TOKEN", "")
        )

    def make_core(self, session, ids, durations, groups) -> LPTScheduler:
        body = {"nodeids": list(ids), "groups": list(groups) if groups is not None else None}
        try:
            self.remote.post("/collection", body)
        except QueueRefused as exc:
            sys.stderr.write(f"ptd shard: {exc}\n")
            raise session.Interrupted(str(exc)) from None
        return RemoteScheduler(ids, self.mode, groups, self.remote)

    # -- the request on its way, in the controller's loop ----------------------------------

    def _io_wait(self) -> tuple[list[int], float | None]:
        core = self.core
        assert isinstance(core, RemoteScheduler)
        while not self.stopping and core.pump():  # answered at once: send what it gave
            self._dispatch_all()
        if core.pending is None:
            return [], None
        return [core.pending.fileno()], core.pending.due_in()

    def _io_ready(self, ready: set[int]) -> None:
        core = self.core
        assert isinstance(core, RemoteScheduler)
        pending = core.pending
        if pending is None:
            return
        if (pending.fileno() in ready and pending.ready()) or pending.due_in() <= 0:
            core.settle()
            self._dispatch_all()

    def _spawn(self, worker_id: str, dispatch: bool = True) -> None:
        core = self.core
        answered = isinstance(core, RemoteScheduler) and core.settle()  # no socket in a fork
        super()._spawn(worker_id, dispatch)
        if answered:
            self._dispatch_all()

    def _loop(self) -> None:
        core = self.core
        assert isinstance(core, RemoteScheduler)
        while True:
            super()._loop()  # until this shard's workers have all ended
            core.settle()
            session = self.session
            if self.stopping or session is None or session.shouldstop or session.shouldfail:
                return
            state = "refused" if core.refused else ("more" if core.queue else core.poll())
            while state == "wait":
                if self.writer is not None and self.writer.pending:
                    self.writer.flush(force=True)
                time.sleep(WAIT_POLL)
                state = core.poll()
            if core.refused:
                session.shouldstop = f"the dashboard stopped this shard: {core.refused}"
                return
            if state != "more":
                return
            core.server_empty = False  # a lost machine's units came back: fork workers again
            for i in range(self.workers):
                self._spawn(f"gw{i}")
