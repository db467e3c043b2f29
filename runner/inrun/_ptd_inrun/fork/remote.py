"""A shard of a run over several machines: the fork engine fed from the run's shared queue.

The dashboard holds one queue of units (tests, or groups under loadscope/loadfile/loadgroup)
per run, longest first from its history. This controller sends its collection once (the
dashboard refuses a shard whose tests differ from the run's, naming the first differing one),
then asks for units for a worker as it frees up, with the same two-in-flight rule as the
local core (``scheduling.core``), and reports the units its workers completed. When the queue
is empty its workers run what they hold and end; the controller then waits while other
machines still hold units (one lost, its units come back: workers are forked again to take
them) and ends once every unit of the run is done.

Stdlib only (``urllib``): the suite's interpreter need not have requests. One connection per
request, so no socket outlives a request into a forked worker. The token is taken out of
``os.environ`` when the engine is made, before any worker is forked.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

import pytest

from ..scheduling.core import LPTScheduler
from .controller import ForkEngine

WAIT_POLL = 0.2  # seconds between asks while other machines hold the last units
TRIES = 6


class QueueRefused(Exception):
    """The dashboard answered 4xx: the shard must stop (its message says why)."""


class ShardQueue:
    def __init__(self, url: str, token: str) -> None:
        self.url = url.rstrip("/")
        self.token = token

    def post(self, path: str, body: dict) -> dict:
        data = json.dumps(body).encode()
        delay = 0.2
        for attempt in range(TRIES):
            request = urllib.request.Request(  # noqa: S310 - the dashboard URL the agent gave
                self.url + path,
                data=data,
                method="POST",
                headers={
                    "Authorization": f"Bearer {self.token}",
                    "Content-Type": "application/json",
                    "User-Agent": "ptd-shard",
                },
            )
            try:
                with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                    return json.loads(response.read() or b"{}")
            except urllib.error.HTTPError as exc:
                if 400 <= exc.code < 500:
                    try:
                        detail = json.loads(exc.read()).get("detail", "")
                    except ValueError:
                        detail = ""
                    raise QueueRefused(str(detail) or f"HTTP {exc.code}") from None
                error: Exception = exc
            except (urllib.error.URLError, OSError, ValueError) as exc:
                error = exc
            if attempt == TRIES - 1:
                raise QueueRefused(f"the dashboard is unreachable: {error}")
            time.sleep(delay)
            delay = min(3.0, delay * 2)
        raise AssertionError("unreachable")


class RemoteScheduler(LPTScheduler):
    """The local core, whose queue holds only what a crashed worker gave back; everything
    else comes from the dashboard, unit by unit."""

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
        self.server_empty = False
        self.refused = ""  # the dashboard's word when it stopped answering this shard

    @property
    def has_queued(self) -> bool:
        return bool(self.queue) or not self.server_empty

    def _ask(self, worker: str | None, held: int = 0, held_seconds: float = 0.0) -> dict:
        done, self.done = self.done, []
        body = {
            "worker": worker,
            "held": held,
            "held_seconds": held_seconds,
            "done": done,
            "holding": sorted(self.left),
        }
        try:
            return self.remote.post("/units", body)
        except QueueRefused:
            self.done = done + self.done
            raise

    def poll(self) -> str:
        """Report what is done; the run's queue: "more", "wait" or "finished"."""
        try:
            return str(self._ask(None).get("state", "finished"))
        except QueueRefused as exc:
            self.refused = str(exc)
            return "refused"

    def next_for_worker(self, worker: str) -> list[int]:
        state = self.workers.get(worker)
        if state is None:
            return []
        if self.queue:
            return super().next_for_worker(worker)
        if self.server_empty or len(state.in_flight) >= 2:
            return []
        held = len(state.in_flight)
        held_seconds = self.estimates[state.in_flight[0]] if held else 0.0
        try:
            answer = self._ask(worker, held, held_seconds)
        except QueueRefused as exc:
            self.refused, self.server_empty = str(exc), True
            return []
        sent: list[int] = []
        for unit in answer.get("units", []):
            indices = [self.index_of[n] for n in unit["nodeids"] if n in self.index_of]
            share = float(unit.get("seconds", 0.0)) / max(1, len(indices))
            for index in indices:
                self.estimates[index] = share
                self.unit_of[index] = int(unit["id"])
            self.left[int(unit["id"])] = set(indices)
            state.in_flight.extend(indices)
            sent += indices
        # Nothing queued on the dashboard any more: the worker must be told so now (shutdown)
        # or it would wait, holding its last item, for a next one that never comes.
        if not sent or answer.get("state") != "more":
            self.server_empty = True
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

    def _loop(self) -> None:
        core = self.core
        assert isinstance(core, RemoteScheduler)
        while True:
            super()._loop()  # until this shard's workers have all ended
            session = self.session
            if self.stopping or session is None or session.shouldstop or session.shouldfail:
                return
            state = "refused" if core.refused else core.poll()
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
