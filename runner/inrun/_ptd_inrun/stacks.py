"""Where a stuck run was: on ``STACKS_SIGNAL`` (SIGUSR1) each process of a run writes the
Python stack of every thread to the run's log.

The runner sends it to a run's processes that survived SIGTERM for their whole grace, one
process at a time, just before it kills them (``runner.procs.end_group``), so the log of a
run that would not stop says where each process was: a test stuck in a lock, a fixture
waiting for a server, PTD's own code. ``faulthandler`` answers from its C signal handler,
so even a main thread blocked in a system call or holding the GIL in C writes its stack.

The file is a duplicate of descriptor 2 taken at configure time, when it is the run's log:
pytest's fd-level capture points descriptor 2 elsewhere while a test runs. Forked workers
inherit the handler and the descriptor; xdist workers register their own.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import signal
from typing import IO

STACKS_SIGNAL = signal.SIGUSR1
_log: IO[str] | None = None


def enable() -> bool:
    """Register the dump in this process (once); False where it cannot be."""
    global _log
    if _log is not None:
        return True
    if not hasattr(faulthandler, "register"):  # pragma: no cover - Windows
        return False
    with contextlib.suppress(OSError, ValueError, RuntimeError):
        log = os.fdopen(os.dup(2), "w")
        try:
            faulthandler.register(STACKS_SIGNAL, file=log, all_threads=True, chain=False)
        except (OSError, ValueError, RuntimeError):
            log.close()
            raise
        _log = log
        return True
    return False
