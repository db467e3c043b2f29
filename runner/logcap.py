"""A run's output log kept within a size: its head and its tail, with the middle cut out.

The run's processes write to a pipe; a thread here copies the first half of the allowance to
the log file as it comes (readable while the run goes), keeps the latest bytes in memory, and
when the output ends writes a line saying how much was cut, then that tail. A test printing
50 MB therefore leaves a log of at most ``limit`` bytes (plus that line), whatever it prints.
"""

from __future__ import annotations

import collections
import contextlib
import os
import select
import threading

CHUNK = 1 << 16
# A trickle of output (pytest's progress: a character and a flush per test) is read a few
# times a second instead of once per write: every read woke this thread, on cores the run's
# workers need (2,000 tests: 2,000 wake-ups). Reads of a full pipe go on without a pause.
TRICKLE = 4096  # bytes: a read smaller than this waits before the next one
PAUSE = 0.05  # seconds


class CappedLog:
    """``write_fd`` goes to the run as its stdout and stderr; call ``spawned()`` once the run
    holds it, and ``finish()`` after the run's processes are gone (returns the bytes cut)."""

    def __init__(self, path: str, limit: int | None):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.file = open(path, "wb")  # noqa: SIM115 - closed by finish()
        self.limit = limit
        self.head_left = limit // 2 if limit else None
        self.tail_size = limit - limit // 2 if limit else 0
        self.tail: collections.deque[bytes] = collections.deque()
        self.tail_bytes = 0
        self.cut = 0
        self._stop = threading.Event()
        self._ending = threading.Event()  # finish() was called: no more pauses
        self.read_fd, self.write_fd = os.pipe()
        self._write_open = True
        self._thread = threading.Thread(target=self._copy, name="ptd-log", daemon=True)
        self._thread.start()

    def spawned(self) -> None:
        """The run has its copy of the pipe's write end: close ours, so the output ends (EOF)
        when the run's last process closes its own."""
        if self._write_open:  # once: a second close could hit another thread's new fd
            self._write_open = False
            with contextlib.suppress(OSError):
                os.close(self.write_fd)

    def finish(self, timeout: float = 5.0) -> int:
        """Write the tail and close the file. A process that escaped the run and still holds
        the pipe does not keep us waiting past ``timeout``."""
        self.spawned()
        self._ending.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._stop.set()
            self._thread.join(2.0)
        return self.cut

    def _copy(self) -> None:
        try:
            while not self._stop.is_set():
                ready, _, _ = select.select([self.read_fd], [], [], 0.5)
                if not ready:
                    continue
                chunk = os.read(self.read_fd, CHUNK)
                if not chunk:
                    break
                self._take(chunk)
                if len(chunk) < TRICKLE:
                    self._ending.wait(PAUSE)
        except OSError:
            pass  # the file or the pipe failed: keep what was written
        finally:
            with contextlib.suppress(OSError):
                os.close(self.read_fd)
            with contextlib.suppress(OSError), self.file:
                self._write_tail()

    def _take(self, chunk: bytes) -> None:
        if self.head_left is None:  # no cap
            self.file.write(chunk)
            return
        if self.head_left:
            head, chunk = chunk[: self.head_left], chunk[self.head_left :]
            self.file.write(head)
            self.file.flush()  # the head is readable while the run goes
            self.head_left -= len(head)
        if not chunk:
            return
        self.tail.append(chunk)
        self.tail_bytes += len(chunk)
        while self.tail and self.tail_bytes - len(self.tail[0]) >= self.tail_size:
            self.cut += len(self.tail[0])
            self.tail_bytes -= len(self.tail.popleft())

    def _write_tail(self) -> None:
        data = b"".join(self.tail)
        extra = max(0, len(data) - self.tail_size)
        self.cut += extra
        if self.cut:
            self.file.write(
                f"\n[… {self.cut} bytes of output cut here: the log keeps its first and last "
                f"{self.limit // 2} bytes (PTD_MAX_LOG_BYTES={self.limit}) …]\n".encode()
            )
        self.file.write(data[extra:])
