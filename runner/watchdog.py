"""``python -m runner.watchdog PID START``: ends the runs of process PID when it dies.

Started once per process that runs runs (``runner.procs.start_watchdog``), in a session of
its own. It waits on a pidfd of that process; when it exits, however (a SIGKILL, the OOM
killer, a crash), every process carrying one of its runs' cookies and every cgroup of its
runs is ended at once: a run never goes on without the server that times it out and
records it, whatever engine it uses and whatever its tests started. (A parent-death signal
reaches only a run's own process, and only while the thread that started it lives.)
"""

from __future__ import annotations

import os
import select
import signal
import sys
import time

from _ptd_inrun import lifeline


def wait_for_exit(pid: int, start: str) -> None:
    """Return once process ``pid`` (started at ``start``) has exited: gone, or a zombie its
    parent has not reaped yet (its pidfd is readable then, and stays so: waiting on it
    again would spin)."""
    try:
        fd = os.pidfd_open(pid)
    except (OSError, AttributeError):  # gone already, or no pidfds: poll instead
        fd = None
    if fd is not None:
        if lifeline.start_time(pid) == start:  # the pidfd names this process, not a reuse
            select.select([fd], [], [])  # readable once it has exited
        os.close(fd)
        return
    while _running(pid, start):
        time.sleep(0.2)


def _running(pid: int, start: str) -> bool:
    fields = lifeline.stat_fields(pid)
    return fields is not None and len(fields) > 19 and fields[19] == start and fields[0] != "Z"


def main(argv: list[str]) -> None:
    pid, start = int(argv[1]), argv[2]
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    wait_for_exit(pid, start)
    from runner import procs  # only now: it costs more to import than all the rest

    procs.end_orphans(f"{pid}.{start}")


if __name__ == "__main__":
    main(sys.argv)
