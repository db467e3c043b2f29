"""Publishing run events to websocket clients through the channel layer.

The sink runs in the pool's reader threads. With the in-memory layer the consumers live on the
server's event loop, so messages are handed to that loop (not waited for: a slow or absent
reader must not slow the engine; a failure is logged when the loop gets to it). With Redis,
any process may publish.

Every message is numbered per run (``seq``, counted in the run's row, so every process
publishing for a run shares the count), and a snapshot carries the number of the last one
published before it. A message can still be lost (a client's full queue drops it), but never
silently: the client sees the gap and asks for a snapshot.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection

from runs.models import Run

log = logging.getLogger(__name__)


def group_name(run_id: int) -> str:
    return f"run-{run_id}"


def next_seq(run_id: int) -> int | None:
    """Count one more message of the run (one atomic statement); its number, None when the
    run does not exist."""
    table = connection.ops.quote_name(Run._meta.db_table)
    column = connection.ops.quote_name("live_seq")
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET {column} = {column} + 1 WHERE id = %s "  # noqa: S608 - constants
            f"RETURNING {column}",
            [run_id],
        )
        row = cursor.fetchone()
    return row[0] if row else None


def _sent(future: concurrent.futures.Future) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("could not publish a run's message: %r", future.exception())


class Publisher:
    """This process's side of the channel layer: the server loop the websocket consumers run
    on (bound by `serve`, or by a test) and how many of them watch each run."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None):
        self._loop = loop
        self._watchers: dict[int, int] = {}  # run id -> consumers of this process watching it
        self._watchers_lock = threading.Lock()
        self._publish_lock = threading.Lock()

    def bind_loop(self, loop: asyncio.AbstractEventLoop | None) -> None:
        """Called by `serve` with the loop the websocket consumers run on (None when it stops)."""
        self._loop = loop

    def _server_loop(self) -> asyncio.AbstractEventLoop | None:
        loop = self._loop
        return loop if loop is not None and loop.is_running() else None

    def watch(self, run_id: int, delta: int) -> None:
        """Consumers of this process count themselves in (+1) and out (-1) of a run's group."""
        with self._watchers_lock:
            count = self._watchers.get(run_id, 0) + delta
            if count > 0:
                self._watchers[run_id] = count
            else:
                self._watchers.pop(run_id, None)

    def reachable(self, run_id: int) -> bool:
        """Whether a message published for this run can reach a websocket client at all.

        With Redis, a page served by any process may be watching: always. With the in-memory
        layer, only this process's consumers can: when it serves (its loop is bound) and one of
        them watches the run. Callers skip building messages otherwise: a run nobody watches
        (run_suite, CI ingestion) costs the server nothing for the live page, and a finished
        run's message reverses URLs, which loads the URLconf and the API in a command (~0.6 s).
        """
        if settings.REDIS_URL:
            return True
        return self._server_loop() is not None and run_id in self._watchers

    def publish(self, run_id: int, message: dict) -> None:
        """Send ``message`` to the run's websocket clients, numbered; a no-op when none can be
        listening (a command's process, or a run nobody watches here)."""
        layer = get_channel_layer()
        if layer is None or not self.reachable(run_id):
            return
        try:
            # Numbered and handed on under one lock: this process's messages of a run leave in
            # the order of their numbers.
            with self._publish_lock:
                seq = next_seq(run_id)
                if seq is None:
                    return
                event = {"type": "run.message", "message": {**message, "seq": seq}}
                loop = self._server_loop()
                if loop is not None:
                    coroutine = layer.group_send(group_name(run_id), event)
                    asyncio.run_coroutine_threadsafe(coroutine, loop).add_done_callback(_sent)
                else:  # Redis (reachable says so): sent from here
                    async_to_sync(layer.group_send)(group_name(run_id), event)
        except Exception:  # publishing is best effort; the database is the record
            log.exception("could not publish to run %s", run_id)


# Websocket messages stay well under the server's 1 MiB frame limit (daphne/autobahn refuse
# larger ones); a big snapshot or batch goes out as several messages.
MESSAGE_BUDGET = 256 * 1024


def chunked(results: list[dict], budget: int | None = None) -> list[list[dict]]:
    """Split results into lists whose JSON stays under `budget` bytes (estimated cheaply)."""
    budget = budget or MESSAGE_BUDGET
    chunks: list[list[dict]] = [[]]
    size = 0
    for result in results:
        cost = 200 + len(result.get("nodeid") or "") + len(result.get("longrepr") or "") * 2
        if chunks[-1] and size + cost > budget:
            chunks.append([])
            size = 0
        chunks[-1].append(result)
        size += cost
    return chunks
