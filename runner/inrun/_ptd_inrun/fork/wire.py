"""Pipes of the fork engine: length-prefixed pickles, and an event writer without a thread.

The fork engine's controller must have no thread alive when it forks, so its events go through
``LoopWriter``: ``emit`` only buffers; the controller's select loop calls ``flush`` (never
blocking) and waits for the descriptor to become writable when the reader is slow.
"""

from __future__ import annotations

import contextlib
import errno
import os
import pickle
import select
import struct
import time
from collections.abc import Callable
from typing import Any

from ..events import _dumps

_HEADER = struct.Struct("<I")
_CHUNK = 1 << 20


def pack(message: Any) -> bytes:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(data)) + data


def write_all(fd: int, data: bytes, when_full: Callable[[], None] | None = None) -> None:
    """Blocking write of everything (the descriptor may be non-blocking); ``when_full`` is
    called each time a non-blocking descriptor's pipe is full, before waiting for room."""
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except BlockingIOError:
            if when_full is not None:
                when_full()
            select.select([], [fd], [])
            continue
        view = view[written:]


class FrameReader:
    """Reassembles frames from the bytes of a pipe."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Any]:
        self._buffer += data
        out = []
        buf = self._buffer
        pos = 0
        while len(buf) - pos >= _HEADER.size:
            (size,) = _HEADER.unpack_from(buf, pos)
            end = pos + _HEADER.size + size
            if len(buf) < end:
                break
            # Only our own forked processes write to these pipes.
            out.append(pickle.loads(bytes(buf[pos + _HEADER.size : end])))  # noqa: S301
            pos = end
        if pos:
            del buf[:pos]
        return out


def read_available(fd: int) -> tuple[bytes, bool]:
    """Everything readable now from a non-blocking descriptor; (data, eof)."""
    chunks = []
    while True:
        try:
            chunk = os.read(fd, _CHUNK)
        except BlockingIOError:
            return b"".join(chunks), False
        except OSError as exc:
            if exc.errno == errno.EINTR:
                continue
            return b"".join(chunks), True
        if not chunk:
            return b"".join(chunks), True
        chunks.append(chunk)


class LoopWriter:
    """JSON-lines events to a descriptor, written by the caller's loop (no thread)."""

    def __init__(self, fd: int, coalesce: float = 0.02) -> None:
        self.fd = fd
        self.coalesce = coalesce
        self._parts: list[bytes] = []
        self._size = 0
        self._since: float | None = None  # when the oldest buffered event arrived
        self._dead = False
        self._closed = False
        os.set_blocking(fd, False)

    def emit(self, event: dict[str, Any]) -> None:
        if self._closed or self._dead:
            return
        data = _dumps(event).encode("utf-8")
        self._parts.append(data)
        self._size += len(data)
        if self._since is None:
            self._since = time.monotonic()

    @property
    def pending(self) -> bool:
        return bool(self._parts) and not self._dead

    def due_in(self) -> float | None:
        """Seconds until buffered events should be written; None when nothing is buffered."""
        if not self.pending or self._since is None:
            return None
        if self._size >= 1 << 15:
            return 0.0
        return max(0.0, self._since + self.coalesce - time.monotonic())

    def flush(self, force: bool = False) -> None:
        """Write what the pipe takes now; never blocks."""
        if not self.pending or (not force and (self.due_in() or 0.0) > 0):
            return
        data = b"".join(self._parts)
        try:
            written = os.write(self.fd, data)
        except BlockingIOError:
            written = 0
        except OSError:  # the reader is gone
            self._dead = True
            self._parts, self._size = [], 0
            return
        rest = data[written:]
        self._parts = [rest] if rest else []
        self._size = len(rest)
        self._since = time.monotonic() if rest else None

    def close(self, timeout: float = 30.0) -> None:
        """Flush everything (waiting up to ``timeout`` for the reader), then close."""
        if self._closed:
            return
        deadline = time.monotonic() + timeout
        while self.pending and time.monotonic() < deadline:
            self.flush(force=True)
            if self.pending:
                select.select([], [self.fd], [], max(0.0, deadline - time.monotonic()))
        self._closed = True
        with contextlib.suppress(OSError):
            os.close(self.fd)


def writer_from_env(var: str = "PTD_EVENTS_FD") -> LoopWriter | None:
    """Like ``events.open_from_env`` but for the fork engine's thread-less writer."""
    value = os.environ.pop(var, None)
    if not value:
        return None
    try:
        fd = int(value)
        os.fstat(fd)
        os.set_inheritable(fd, False)
    except (ValueError, OSError):
        return None
    return LoopWriter(fd)
