"""Websocket consumer for a run's live events (README: Architecture).

On connect the client gets a snapshot of everything so far, then the sink's batched
increments. The group is joined before the snapshot is read, so nothing falls between the two;
an increment already in the snapshot may arrive again, and clients de-duplicate by
(nodeid, attempt).

Increments are numbered per run (``seq``, runs.live.publish); the snapshot carries the number
of the last one published before it was read, so a client skips those it already has and, on a gap
(a message lost), sends ``{"type": "snapshot"}`` and gets a fresh snapshot. The parts of a
snapshot split over several messages (``results`` without a ``seq``) follow it directly.

A snapshot of a large run is megabytes, asked for with a few bytes (or by connecting): a user
gets at most one every ``SNAPSHOT_EVERY`` seconds, over all their connections to this server.
Asking sooner is not refused but put off, and any number of such requests on a connection
bring one snapshot when the interval is over (a client that asked, even many times, gets
exactly one fresh state).
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from runs import permissions
from runs.execution import environment
from runs.live.publish import chunked, group_name
from runs.load.queries import live_snapshot
from runs.models import Run, TestResult

log = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404
SNAPSHOT_EVERY = 2.0  # seconds between two snapshots sent to one user, at the least
# When each user last got a snapshot (this process): reconnecting in a loop gets no more than
# asking on one connection.
_last_by_user: dict[int, float] = {}


def snapshot(run_id: int) -> dict | None:
    run = Run.objects.select_related("suite").filter(pk=run_id).first()
    if run is None:
        return None
    workers = [stat.live_dict() for stat in run.worker_stats.all()]
    results = [TestResult.live(r) for r in run.results.order_by("id").values(*TestResult.FIELDS)]
    data = {
        "type": "snapshot",
        # Read with the run, before its results: every message numbered up to here was
        # published after its results were stored, so they are in what is read next.
        "seq": run.live_seq,
        "run": run.to_dict(workers=False),
        "workers": workers,
        "results": results,
        "estimate": estimated_work(run),
    }
    if run.is_load:  # its stats, series, errors and thresholds so far (runs.load)
        data["load"] = live_snapshot(run)
    return data


def estimated_work(run: Run) -> dict:
    """Expected serial seconds of the run, for the page's ETA: the duration history the
    scheduler was given when the run started (read back, not queried again per client)."""
    try:
        history = json.loads(
            (Path(settings.PTD_RUNS_DIR) / str(run.id) / "durations.json").read_text()
        )
    except (OSError, ValueError):
        history = {}  # queued, ingested from outside, or no history yet
    return {"known_tests": len(history), "seconds": round(sum(history.values()), 3)}


class NotFoundConsumer(AsyncJsonWebsocketConsumer):
    """A websocket path that names no run: accepted only to be closed with 4404."""

    async def connect(self):
        await self.accept()
        await self.close(code=CLOSE_NOT_FOUND)


class RunConsumer(AsyncJsonWebsocketConsumer):
    last_snapshot = float("-inf")  # loop time of the last snapshot sent on this connection
    owed: asyncio.Task | None = None  # the snapshot asked for too soon, sent when it is time

    async def connect(self):
        user = self.scope.get("user")
        if not permissions.can_view(user):
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        run_id = int(self.scope["url_route"]["kwargs"]["run_id"])
        if not 0 < run_id < 2**63:  # past the database's integers: no such run
            await self.accept()
            await self.close(code=CLOSE_NOT_FOUND)
            return
        self.run_id = run_id
        self.group = group_name(self.run_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        self.publisher = environment.current().publisher
        self.publisher.watch(self.run_id, +1)
        await self.accept()
        if not await database_sync_to_async(Run.objects.filter(pk=run_id).exists)():
            await self.not_found()
            return
        await self.snapshot_asked()  # at once, unless this user just had one

    async def not_found(self) -> None:
        await self.send_json({"type": "error", "detail": "No such run."})
        await self.close(code=CLOSE_NOT_FOUND)

    async def send_snapshot(self, data: dict) -> None:
        """The snapshot, its results split over several messages when they are many."""
        self.last_snapshot = asyncio.get_running_loop().time()
        _last_by_user[self.scope["user"].pk] = self.last_snapshot
        first, *rest = chunked(data["results"])
        await self.send_json({**data, "results": first})
        for chunk in rest:
            await self.send_json({"type": "results", "results": chunk})

    async def disconnect(self, code):
        if self.owed is not None:
            self.owed.cancel()
        if hasattr(self, "group"):
            self.publisher.watch(self.run_id, -1)
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        # Binary frames and text that is not JSON are ignored, like any message not understood
        # (the base class raised, which dropped the connection with a traceback in the log).
        if not text_data:
            return
        try:
            content = await self.decode_json(text_data)
        except ValueError:
            return
        await self.receive_json(content, **kwargs)

    async def receive_json(self, content, **kwargs):
        if not isinstance(content, dict):
            return
        if content.get("type") == "snapshot":  # a client may ask to rebuild its state
            await self.snapshot_asked()

    async def snapshot_asked(self) -> None:
        if self.owed is not None:  # one is on its way: it answers this request too
            return
        last = max(self.last_snapshot, _last_by_user.get(self.scope["user"].pk, float("-inf")))
        wait = last + SNAPSHOT_EVERY - asyncio.get_running_loop().time()
        if wait <= 0:
            await self.fresh_snapshot()
        else:
            self.owed = asyncio.create_task(self.fresh_snapshot(after=wait))

    async def fresh_snapshot(self, after: float = 0.0) -> None:
        try:
            if after:
                await asyncio.sleep(after)
            data = await database_sync_to_async(snapshot)(self.run_id)
            if data is None:  # deleted meanwhile
                await self.not_found()
            else:
                await self.send_snapshot(data)
        except Exception:
            # Put off, nobody would see it fail and the page would wait for it for ever:
            # closing makes the page reconnect, which asks again.
            log.exception("run %s: its snapshot failed", self.run_id)
            await self.close()
        finally:
            self.owed = None

    async def run_message(self, event):
        await self.send_json(event["message"])
