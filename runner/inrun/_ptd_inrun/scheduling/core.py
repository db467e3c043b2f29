"""Longest-processing-time-first scheduling core, independent of any transport.

Used by both engines: xdist's (``scheduling.xdist``) and the fork engine
(``fork.controller``). It knows the collection (a list of node ids, addressed by index), an
estimate of every test's duration and which indices each worker holds ("in flight":
sent, not reported complete).

Dispatch rules (``next_for_worker``):

* Units (one test, or a whole module/class/file/group) are handed out longest first.
* A worker runs an item only once it knows the next one, so every worker is kept at two items
  or more. When the item it holds is long, its second item is the *shortest* unit left rather
  than the next long one, so long tests are never queued behind each other on one worker.
* Beyond two items, more units are added while the estimated work queued behind the running
  item stays under a small budget: tiny tests travel in batches (few round trips), and as the
  queue drains the budget shrinks so the tail stays balanced.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ..ids import base_nodeid, strip_group

MODES = ("load", "loadscope", "loadfile", "loadgroup")
DEFAULT_UNKNOWN = 0.1
REQUEUED = "requeued"  # the key of units put back (no node id, file or @group)


def load_durations(path: str | None) -> dict[str, float]:
    """``{nodeid: seconds}`` from a JSON file; anything missing or malformed -> ``{}``."""
    if not path:
        return {}
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    out: dict[str, float] = {}
    for key, value in data.items():
        if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
            out[str(key)] = float(value)
    return out


def unit_key(nodeid: str, mode: str, group: str | None = None) -> str:
    """The unit a test belongs to under an xdist-style ``--dist`` mode.

    ``group`` is the test's ``xdist_group`` (from its marks, see ``groups.py``): under
    loadgroup the tests of one group travel together, the others one by one.
    """
    if mode == "load":
        return nodeid
    if mode == "loadfile":
        return nodeid.split("::", 1)[0]
    if mode == "loadgroup":
        return nodeid if group is None else "@" + group
    if mode == "loadscope":
        return strip_group(nodeid).rsplit("::", 1)[0]
    raise ValueError(f"unknown scheduling mode {mode!r}")


def estimate_durations(
    collection: Sequence[str],
    durations: Mapping[str, float] | None,
    default: float = DEFAULT_UNKNOWN,
) -> list[float]:
    """Seconds per collected item; unknown ones at the mean of the known ones."""
    known: dict[str, float] = {}
    for nodeid, seconds in (durations or {}).items():
        try:
            value = float(seconds)
        except (TypeError, ValueError):
            continue
        if value >= 0:
            known.setdefault(base_nodeid(str(nodeid)), value)
            known[str(nodeid)] = value
    found: list[float | None] = []
    for nodeid in collection:
        value = known.get(nodeid)
        if value is None:
            value = known.get(strip_group(nodeid))
        if value is None:
            value = known.get(base_nodeid(nodeid))
        found.append(value)
    matched = [v for v in found if v is not None]
    fallback = sum(matched) / len(matched) if matched else default
    return [fallback if v is None else v for v in found]


@dataclass
class Unit:
    key: str
    indices: list[int]
    seconds: float


@dataclass
class _Worker:
    in_flight: list[int] = field(default_factory=list)


class LPTScheduler:
    """Hands out collection indices to workers, longest unit first."""

    def __init__(
        self,
        collection: Sequence[str],
        durations: Mapping[str, float] | None = None,
        mode: str = "load",
        *,
        groups: Sequence[str | None] | None = None,
        min_budget: float = 0.05,
        max_budget: float = 0.5,
        budget_share: float = 8.0,
        default_duration: float = DEFAULT_UNKNOWN,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown scheduling mode {mode!r}")
        self.collection = list(collection)
        self.mode = mode
        self.groups = list(groups) if groups is not None else [None] * len(self.collection)
        if len(self.groups) != len(self.collection):
            raise ValueError("groups must name one group (or None) per collected test")
        self.estimates = estimate_durations(self.collection, durations, default_duration)
        self.min_budget = min_budget
        self.max_budget = max_budget
        self.budget_share = budget_share
        self.units = self._build_units()
        self.queue: deque[Unit] = deque(self.units)
        self.queued_seconds = sum(u.seconds for u in self.units)
        self.workers: dict[str, _Worker] = {}
        self.completed: set[int] = set()

    def _build_units(self) -> list[Unit]:
        by_key: dict[str, Unit] = {}
        for index, nodeid in enumerate(self.collection):
            key = unit_key(nodeid, self.mode, self.groups[index])
            unit = by_key.get(key)
            if unit is None:
                unit = by_key[key] = Unit(key, [], 0.0)
            unit.indices.append(index)
            unit.seconds += self.estimates[index]
        # sorted() is stable: equal estimates keep collection order.
        return sorted(by_key.values(), key=lambda u: -u.seconds)

    # -- workers ---------------------------------------------------------------------------

    def add_worker(self, worker: str) -> None:
        self.workers.setdefault(worker, _Worker())

    def remove_worker(self, worker: str) -> list[int]:
        """Forget a worker; its unfinished items are returned and its unstarted ones requeued.

        The first returned index is the one the worker was running (the crash item); it is
        *not* requeued (xdist reports it as crashed; ``mark_test_pending`` retries it).
        """
        state = self.workers.pop(worker, None)
        if state is None or not state.in_flight:
            return []
        unfinished = list(state.in_flight)
        self.requeue(unfinished[1:])
        return unfinished

    def in_flight(self, worker: str) -> list[int]:
        return list(self.workers[worker].in_flight)

    # -- state -----------------------------------------------------------------------------

    @property
    def has_queued(self) -> bool:
        return bool(self.queue)

    @property
    def has_pending(self) -> bool:
        return bool(self.queue) or any(w.in_flight for w in self.workers.values())

    @property
    def finished(self) -> bool:
        """Nothing queued and no worker waiting on more than its last item."""
        return not self.queue and all(len(w.in_flight) < 2 for w in self.workers.values())

    def budget(self) -> float:
        share = self.queued_seconds / (max(1, len(self.workers)) * self.budget_share)
        return max(self.min_budget, min(self.max_budget, share))

    # -- dispatch --------------------------------------------------------------------------

    def mark_complete(self, worker: str, index: int) -> None:
        state = self.workers.get(worker)
        if state is not None and index in state.in_flight:
            state.in_flight.remove(index)
        self.completed.add(index)

    def mark_pending(self, index: int) -> None:
        """Run ``index`` again (e.g. a crashed test being retried), ahead of everything else.

        In the grouping modes it joins the unit ``remove_worker`` just requeued (what its
        crashed worker held besides it), so the tests of its unit still share a worker.
        """
        self.completed.discard(index)
        head = self.queue[0] if self.queue else None
        if self.mode != "load" and head is not None and head.key == REQUEUED:
            seconds = self.estimates[index]
            head.indices = sorted({*head.indices, index})
            head.seconds += seconds
            self.queued_seconds += seconds
            return
        self.requeue([index])

    def requeue(self, indices: Iterable[int]) -> None:
        indices = sorted(set(indices))
        if not indices:
            return
        seconds = sum(self.estimates[i] for i in indices)
        self.queue.appendleft(Unit(REQUEUED, indices, seconds))
        self.queued_seconds += seconds

    def unassign(self, worker: str, indices: Iterable[int]) -> list[int]:
        """Take back unstarted items from a worker (xdist "unscheduled") and requeue them."""
        state = self.workers.get(worker)
        if state is None:
            return []
        taken = [i for i in indices if i in state.in_flight]
        for i in taken:
            state.in_flight.remove(i)
        self.requeue(taken)
        return taken

    def _take(self, state: _Worker, from_tail: bool = False) -> list[int]:
        unit = self.queue.pop() if from_tail else self.queue.popleft()
        self.queued_seconds = max(0.0, self.queued_seconds - unit.seconds)
        state.in_flight.extend(unit.indices)
        return list(unit.indices)

    # When nothing is queued, every worker is told so (the engines shut them all down).
    shuts_all_down = True

    def _left_for_others(self, worker: str) -> bool:
        """Whether what is queued is no more than the first items of the other workers that
        hold none: then this one takes no item ahead of the one it holds (it runs that one
        once told nothing more will come: the engines shut every worker down when the queue
        empties), and 2 tests on 2 workers run side by side, not one after the other."""
        if not self.shuts_all_down:  # a worker holding back would wait for ever
            return False
        idle = sum(1 for name, st in self.workers.items() if name != worker and not st.in_flight)
        return len(self.queue) <= idle

    def next_for_worker(self, worker: str) -> list[int]:
        """The indices to send to ``worker`` now (possibly none); they count as in flight."""
        state = self.workers.get(worker)
        if state is None or not self.queue:
            return []
        budget = self.budget()
        sent: list[int] = []
        if not state.in_flight:
            sent += self._take(state)
        holding_long = self.estimates[state.in_flight[0]] > budget
        if self.queue and len(state.in_flight) == 1 and not self._left_for_others(worker):
            # The worker needs a next item before it can run the one it holds.
            sent += self._take(state, from_tail=holding_long)
        if holding_long:
            return sent  # anything more would only wait behind the long item
        behind = sum(self.estimates[i] for i in state.in_flight[1:])
        if behind < budget / 2:
            while self.queue and behind + self.queue[0].seconds <= budget:
                behind += self.queue[0].seconds
                sent += self._take(state)
        return sent
