"""Non-blocking JSON-lines event writer to an inherited file descriptor."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import threading
import time
from typing import Any

_STOP = object()


class EventWriter:
    """Serialises events on a background thread so test execution never waits on the reader.

    ``emit`` only appends to an unbounded queue. The thread drains everything queued, writes it
    in one batch, and stops writing silently once the reader is gone (BrokenPipe).
    """

    def __init__(self, fd: int, coalesce: float = 0.02) -> None:
        self._fd = fd
        self._coalesce = coalesce
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._dead = False
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="ptd-events", daemon=True)
        self._thread.start()

    def emit(self, event: dict[str, Any]) -> None:
        if not self._closed:
            self._queue.put(event)

    def close(self, timeout: float = 30.0) -> None:
        """Flush what is queued, then close the descriptor."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join(timeout)
        with contextlib.suppress(OSError):
            os.close(self._fd)

    def _run(self) -> None:
        stop = False
        while not stop:
            batch = [self._queue.get()]
            if batch[0] is not _STOP and self._coalesce:
                time.sleep(self._coalesce)  # let a burst of reports pile up: fewer writes
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if any(item is _STOP for item in batch):
                stop = True
            lines = [_dumps(item) for item in batch if item is not _STOP]
            if lines and not self._dead:
                self._write("".join(lines).encode("utf-8"))

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        except OSError:  # BrokenPipeError or a closed descriptor: the reader is gone
            self._dead = True


def _dumps(event: dict[str, Any]) -> str:
    try:
        return json.dumps(event, separators=(",", ":"), default=str) + "\n"
    except (TypeError, ValueError) as exc:
        return (
            json.dumps(
                {
                    "type": "internal_error",
                    "time": time.time(),
                    "message": f"unserialisable event: {exc}",
                }
            )
            + "\n"
        )


def open_from_env(var: str = "PTD_EVENTS_FD") -> EventWriter | None:
    """The writer for the descriptor named by ``var``, or None when unset or unusable."""
    value = os.environ.pop(var, None)  # user code and nested pytest runs must not see it
    if not value:
        return None
    try:
        fd = int(value)
        os.fstat(fd)
        os.set_inheritable(fd, False)  # subprocesses of tests must not hold the pipe open
    except (ValueError, OSError):
        return None
    return EventWriter(fd)
