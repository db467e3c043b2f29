"""Publishing run events to websocket clients through the channel layer.

The sink runs in the pool's reader threads. With the in-memory layer the consumers live on the
server's event loop, so messages are handed to that loop (never awaited: a slow or absent reader
must not slow the engine). With Redis, any process may publish.
"""

from __future__ import annotations

import asyncio
import logging
import threading

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings

log = logging.getLogger(__name__)
_loop: asyncio.AbstractEventLoop | None = None
_watchers: dict[int, int] = {}  # run id -> websocket consumers of this process watching it
_watchers_lock = threading.Lock()


def bind_loop(loop: asyncio.AbstractEventLoop | None) -> None:
    """Called by `serve` (and tests) with the loop the websocket consumers run on."""
    global _loop
    _loop = loop


def group_name(run_id: int) -> str:
    return f"run-{run_id}"


def _server_loop() -> asyncio.AbstractEventLoop | None:
    loop = _loop
    return loop if loop is not None and loop.is_running() else None


def watch(run_id: int, delta: int) -> None:
    """Consumers of this process count themselves in (+1) and out (-1) of a run's group."""
    with _watchers_lock:
        count = _watchers.get(run_id, 0) + delta
        if count > 0:
            _watchers[run_id] = count
        else:
            _watchers.pop(run_id, None)


def reachable(run_id: int) -> bool:
    """Whether a message published for this run can reach a websocket client at all.

    With Redis, a page served by any process may be watching: always. With the in-memory
    layer, only this process's consumers can: when it serves (its loop is bound) and one of
    them watches the run. Callers skip building messages otherwise: a run nobody watches
    (run_suite, CI ingestion) costs the server nothing for the live page, and a finished
    run's message reverses URLs, which loads the URLconf and the API in a command (~0.6 s).
    """
    if settings.REDIS_URL:
        return True
    return _server_loop() is not None and run_id in _watchers


def publish(run_id: int, message: dict) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    event = {"type": "run.message", "message": message}
    loop = _server_loop()
    try:
        if loop is not None:
            asyncio.run_coroutine_threadsafe(layer.group_send(group_name(run_id), event), loop)
        elif settings.REDIS_URL:
            async_to_sync(layer.group_send)(group_name(run_id), event)
        # else: in-memory layer and no server loop in this process: nobody can be listening.
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
