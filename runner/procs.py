"""Process-group helpers: end a run's whole group and leave no zombie behind.

A run's pytest process leads its own session/process group, so every process it starts
(xdist workers, servers a test spawns, their children) shares its group id and can be
signalled at once with ``killpg``. Orphans of that group are reparented to the nearest
"child subreaper"; when the pool can make its own process one (Linux), it reaps the group's
dead orphans itself, so a finished run leaves no zombies even under an init that never reaps.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import time

log = logging.getLogger(__name__)

_PR_SET_CHILD_SUBREAPER = 36
_subreaper: bool | None = None


def become_subreaper() -> bool:
    """Make this process adopt orphaned descendants (Linux only). Idempotent."""
    global _subreaper
    if _subreaper is None:
        _subreaper = False
        if sys.platform.startswith("linux"):
            try:
                import ctypes

                libc = ctypes.CDLL(None, use_errno=True)
                _subreaper = libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
            except (OSError, AttributeError):  # pragma: no cover - exotic libc
                _subreaper = False
    return _subreaper


def _proc_members(pgid: int) -> list[tuple[int, int, str]] | None:
    """(pid, ppid, state) of every process in group ``pgid``; None without /proc."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return None
    members = []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read().decode("ascii", "replace")
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ..." - comm may itself contain spaces and parens
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) >= 3 and int(fields[2]) == pgid:
            members.append((int(entry), int(fields[1]), fields[0]))
    return members


def group_alive(pgid: int, exclude: int | None = None) -> bool:
    """True while some process of the group is still running (zombies don't count).

    Dead members that were reparented to us are reaped in the same pass, so once this
    returns False the group has left nothing behind (``exclude``: the leader, whose Popen
    object reaps it).
    """
    members = _proc_members(pgid)
    if members is None:  # no /proc: fall back to the kernel's view (zombies included)
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True
    me = os.getpid()
    alive = False
    for pid, ppid, state in members:
        if state in ("Z", "X"):
            if ppid == me and pid != exclude:
                with contextlib.suppress(ChildProcessError, OSError):
                    os.waitpid(pid, os.WNOHANG)
        else:
            alive = True
    return alive


def signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def end_group(pgid: int, grace: float, leader: int | None = None, poll: float = 0.02) -> bool:
    """SIGTERM the group, SIGKILL whatever is left after ``grace`` s; True once it is gone.

    ``leader`` (the Popen'd process) is never reaped here: its Popen object does that.
    """
    if not group_alive(pgid, leader):
        return True
    signal_group(pgid, signal.SIGTERM)
    if _wait_gone(pgid, grace, leader, poll):
        return True
    log.info("process group %s survived SIGTERM for %.1fs; killing it", pgid, grace)
    signal_group(pgid, signal.SIGKILL)
    return _wait_gone(pgid, 5.0, leader, poll)


def _wait_gone(pgid: int, timeout: float, leader: int | None, poll: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if not group_alive(pgid, leader):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll)
