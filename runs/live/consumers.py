"""Websocket consumer for a run's live events (README: Architecture).

On connect the client gets a snapshot of everything so far, then the sink's batched
increments. The group is joined before the snapshot is read, so nothing falls between the two;
an increment already in the snapshot may arrive again, and clients de-duplicate by
(nodeid, attempt).

Increments are numbered per run (``seq``, runs.live.publish); the snapshot carries the number
of the last one published before it was read, so a client skips those it already has and, on a gap
(a message lost), sends ``{"type": "snapshot"}`` and gets a fresh snapshot. The parts of a
snapshot split over several messages (``results`` without a ``seq``) follow it directly.
"""

from __future__ import annotations

import json
from pathlib import Path

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from runs import permissions
from runs.execution import environment
from runs.live.publish import chunked, group_name
from runs.load.queries import live_snapshot
from runs.models import Run, TestResult

CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404


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
        data = await database_sync_to_async(snapshot)(self.run_id)
        if data is None:
            await self.send_json({"type": "error", "detail": "No such run."})
            await self.close(code=CLOSE_NOT_FOUND)
            return
        await self.send_snapshot(data)

    async def send_snapshot(self, data: dict) -> None:
        """The snapshot, its results split over several messages when they are many."""
        first, *rest = chunked(data["results"])
        await self.send_json({**data, "results": first})
        for chunk in rest:
            await self.send_json({"type": "results", "results": chunk})

    async def disconnect(self, code):
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
            data = await database_sync_to_async(snapshot)(self.run_id)
            if data:
                await self.send_snapshot(data)

    async def run_message(self, event):
        await self.send_json(event["message"])
