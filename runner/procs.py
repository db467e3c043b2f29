"""Ending a run's processes, all of them, and leaving no zombie behind.

A run's pytest process leads its own session/process group, so every process it starts
(xdist workers, servers a test spawns, their children) shares its group id and can be
signalled at once with ``killpg``. Orphans of that group are reparented to the nearest
"child subreaper"; when the pool can make its own process one (Linux), it reaps the group's
dead orphans itself, so a finished run leaves no zombies even under an init that never reaps.

A process that leaves the group (``setsid``) is found all the same (``RunProcesses``): by the
run's cgroup where cgroup v2 can be used, and always by the cookie in its environment
(``_ptd_inrun.lifeline``). Runs die with the process that runs them, however it dies: its
watchdog (``runner.watchdog``, one per process) then ends every process and cgroup of its
runs; a cold run's own process also has a parent-death signal, and a warm run's zygote
watches the server too. What is left when even the watchdog died is ended by the next
server to start (``end_orphans``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable

from _ptd_inrun import lifeline
from _ptd_inrun.stacks import STACKS_SIGNAL

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_subreaper: bool | None = None
_prctl = None  # libc's prctl, loaded once (never in a forked child: see RunProcesses)
USE_CGROUPS = True  # a run gets a cgroup of its own where cgroup v2 lets us make one
CGROUP_PREFIX = "ptd-"


def _libc_prctl():
    global _prctl
    if _prctl is None:
        _prctl = False
        if sys.platform.startswith("linux"):
            try:
                import ctypes

                _prctl = ctypes.CDLL(None, use_errno=True).prctl
            except (OSError, AttributeError):  # pragma: no cover - exotic libc
                pass
    return _prctl


def become_subreaper() -> bool:
    """Make this process adopt orphaned descendants (Linux only). Idempotent."""
    global _subreaper
    if _subreaper is None:
        prctl = _libc_prctl()
        _subreaper = bool(prctl) and prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
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


def wait_exited(proc) -> None:
    """Block until ``proc`` has exited, leaving it for ``proc.wait()`` to reap: while it is a
    zombie, its pid cannot be reused. A process that is not our child (a zygote's run, which
    its zygote reaps) is waited for by ``proc.wait()`` itself."""
    if not isinstance(proc, subprocess.Popen) or not hasattr(os, "waitid"):
        proc.wait()
        return
    while True:
        try:
            os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
            return
        except InterruptedError:
            continue
        except ChildProcessError:  # reaped already (by proc.wait() elsewhere)
            return


def end_group(pgid: int, grace: float, leader: int | None = None, poll: float = 0.02) -> bool:
    """SIGTERM the group, SIGKILL whatever is left after ``grace`` s; True once it is gone.

    ``leader`` (the Popen'd process) is never reaped here: its Popen object does that.
    """
    if not group_alive(pgid, leader):
        return True
    signal_group(pgid, signal.SIGTERM)
    if _wait_gone(pgid, grace, leader, poll):
        return True
    dumped = dump_stacks(pgid)
    log.info(
        "process group %s survived SIGTERM for %.1fs; killing it (Python stacks of %s in the "
        "run's log)", pgid, grace, ", ".join(map(str, dumped)) or "none",
    )  # fmt: skip
    signal_group(pgid, signal.SIGKILL)
    return _wait_gone(pgid, 5.0, leader, poll)


def dump_stacks(pgid: int, budget: float = 1.0) -> list[int]:
    """Ask each running process of the group, one at a time, for its Python stacks
    (``_ptd_inrun.stacks``: into the run's log), before it is killed; the pids asked. A
    process that does not handle the signal ends on it, as it was about to."""
    members = [pid for pid, _ppid, state in _proc_members(pgid) or () if state not in "ZX"]
    pause = min(0.1, budget / max(1, len(members)))  # one dump after the other, not mixed
    for pid in members:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, STACKS_SIGNAL)
        time.sleep(pause)
    return members


def _wait_gone(pgid: int, timeout: float, leader: int | None, poll: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if not group_alive(pgid, leader):
            # Once more, now that all are dead: a zombie read before its parent died was
            # reparented to us after that read.
            group_alive(pgid, leader)
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll)


# -- every process of a run, wherever it went ------------------------------------------------


def _state(pid: int) -> tuple[str, int] | None:
    """(state, ppid) of a process; None once it is gone."""
    fields = lifeline.stat_fields(pid)
    return None if fields is None else (fields[0], int(fields[1]))


def _alive(pids: Iterable[int], leader: int | None) -> set[int]:
    """Those of ``pids`` still running; dead ones that are our children are reaped (never
    ``leader``: its Popen object reaps it)."""
    me = os.getpid()
    alive = set()
    for pid in pids:
        state = _state(pid)
        if state is None:
            continue
        if state[0] in ("Z", "X"):
            if state[1] == me and pid != leader:
                with contextlib.suppress(ChildProcessError, OSError):
                    os.waitpid(pid, os.WNOHANG)
            continue
        alive.add(pid)
    return alive


_cgroup_base: str | None = None
_cgroup_probed = False


def cgroup_base() -> str | None:
    """The cgroup v2 directory of this process, where runs' cgroups are made; None when there
    is no cgroup v2 hierarchy, or we may not make cgroups in it (probed once)."""
    global _cgroup_base, _cgroup_probed
    if _cgroup_probed:
        return _cgroup_base
    _cgroup_probed = True
    try:
        with open("/proc/self/mountinfo") as fh:
            mounts = [line.split() for line in fh]
        with open("/proc/self/cgroup") as fh:
            own = next(line.strip()[3:] for line in fh if line.startswith("0::"))
    except (OSError, StopIteration):
        return None
    for fields in mounts:
        if "-" in fields and fields[fields.index("-") + 1] == "cgroup2":
            base = os.path.join(fields[4], own.lstrip("/"))
            probe = os.path.join(base, f"ptdprobe-{os.getpid()}")  # not a run's: no prefix
            try:
                os.mkdir(probe)
                os.rmdir(probe)
            except OSError:
                return None
            _cgroup_base = base
            return base
    return None


class RunProcesses:
    """Every process a run starts, found again when it ends, whatever it did.

    The run's environment carries ``cookie`` (``env()``); where cgroup v2 allows, the run is
    moved into a cgroup of its own before it runs any code (``child_setup`` for a cold start,
    the zygote's child for a warm one). ``end`` ends what is left of both sets.
    """

    def __init__(self) -> None:
        start_watchdog()
        self.cookie = lifeline.new_cookie()
        self.cgroup: str | None = None
        self.exclude: set[int] = set()  # a zygote carries its run's cookie: not the run's
        # Every process signalled here: once dead it no longer shows its cookie (a zombie has
        # no environment) nor sits in the cgroup, yet it may be our child (we are the
        # subreaper) and must be reaped.
        self.ended: set[int] = set()
        self._parent = os.getpid()
        self._prctl = _libc_prctl()
        self._procs_fd: int | None = None
        base = cgroup_base() if USE_CGROUPS else None
        if base is not None:
            path = os.path.join(base, CGROUP_PREFIX + self.cookie)
            try:
                os.mkdir(path)
                self._procs_fd = os.open(os.path.join(path, "cgroup.procs"), os.O_WRONLY)
                self.cgroup = path
            except OSError as exc:
                log.info("no cgroup for a run (%s); its cookie is enough", exc)
                with contextlib.suppress(OSError):
                    os.rmdir(path)

    def env(self) -> dict[str, str]:
        return {lifeline.COOKIE_VAR: self.cookie}

    def adopt(self, cookie: str, zygote_pid: int) -> None:
        """The run was forked by a zygote: its processes carry the zygote's cookie."""
        self.cookie = cookie
        self.exclude.add(zygote_pid)

    def child_setup(self) -> None:
        """``preexec_fn`` of a cold start, in the forked child before exec: die with the
        server (the thread that forks lives until the run has ended), join the cgroup.
        Nothing here imports, locks or allocates much: the server has other threads."""
        if self._prctl:
            self._prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != self._parent:  # the server died before prctl took effect
            os._exit(1)
        if self._procs_fd is not None:
            with contextlib.suppress(OSError):
                os.write(self._procs_fd, b"0")

    def pids(self) -> set[int]:
        found = {pid for pid, c in lifeline.carriers().items() if c == self.cookie}
        if self.cgroup:
            found |= lifeline.cgroup_pids(self.cgroup)
        return found - self.exclude - {os.getpid()}

    def end(self, grace: float, leader: int | None = None, poll: float = 0.02) -> bool:
        """SIGTERM what is left of the run, SIGKILL it after ``grace`` s; True once it is all
        gone. The run's cgroup goes too."""
        try:
            left = _alive(self.pids(), leader)
            if left:
                log.info("run left %d process(es) outside its group; ending them", len(left))
                self._signal(left, signal.SIGTERM)
                if not self._wait(grace, leader, poll):
                    self._signal(self.pids(), signal.SIGKILL)
                    if self.cgroup:
                        lifeline.cgroup_kill(self.cgroup)
                    return self._wait(5.0, leader, poll)
            return True
        finally:
            # All are dead now, and so are their parents among them: every orphan has been
            # reparented, so this pass sees (and reaps) each zombie that is ours.
            _alive(self.ended, leader)
            self.close()

    def _signal(self, pids: Iterable[int], sig: int) -> None:
        for pid in pids:
            self.ended.add(pid)
            with contextlib.suppress(OSError):
                os.kill(pid, sig)

    def _wait(self, timeout: float, leader: int | None, poll: float) -> bool:
        deadline = time.monotonic() + timeout
        while _alive(self.pids() | self.ended, leader):
            if time.monotonic() >= deadline:
                return False
            time.sleep(poll)
        return True

    def close(self) -> None:
        if self._procs_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._procs_fd)
            self._procs_fd = None
        if self.cgroup and _remove_cgroup(self.cgroup):
            self.cgroup = None


def _remove_cgroup(path: str, timeout: float = 2.0) -> bool:
    """rmdir a cgroup once its last process has exited (it may take a moment)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.rmdir(path)
            return True
        except FileNotFoundError:
            return True
        except OSError:
            if time.monotonic() >= deadline:
                log.warning("cgroup %s is still busy; left in place", path)
                return False
            time.sleep(0.02)


def end_orphans(owner: str | None = None) -> int:
    """End every process and cgroup left by runs whose owner (the process that ran them) is
    dead: those of ``owner`` (``pid.start``, the watchdog's), else of any dead owner (what the
    next server to start ends). The count."""

    def orphaned(cookie: str) -> bool:
        return cookie.startswith(f"{owner}.") if owner else not lifeline.owner_alive(cookie)

    orphans = {pid for pid, c in lifeline.carriers().items() if orphaned(c)}
    for pid in orphans:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    base = cgroup_base() if USE_CGROUPS else None
    stale = []
    if base is not None:
        with contextlib.suppress(OSError):
            stale = [
                os.path.join(base, name)
                for name in os.listdir(base)
                if name.startswith(CGROUP_PREFIX) and orphaned(name[len(CGROUP_PREFIX) :])
            ]
    for path in stale:
        orphans |= lifeline.cgroup_pids(path)
        lifeline.cgroup_kill(path)
    deadline = time.monotonic() + 5.0
    while _alive(orphans, None) and time.monotonic() < deadline:
        time.sleep(0.02)
    for path in stale:
        _remove_cgroup(path)
    if orphans:
        log.warning("ended %d process(es) left by runs of a server that died", len(orphans))
    return len(orphans)


_watchdog: subprocess.Popen | None = None
_watchdog_lock = threading.Lock()


def start_watchdog() -> None:
    """Start, once per process, the watchdog that ends this process's runs, all they started,
    the moment this process dies, however it dies (``runner.watchdog``)."""
    global _watchdog
    if not sys.platform.startswith("linux"):
        return
    me = os.getpid()
    with _watchdog_lock:
        if _watchdog is not None and _watchdog.args[-2] == str(me) and _watchdog.poll() is None:
            return
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
        start = lifeline.start_time(me) or "0"
        try:
            _watchdog = subprocess.Popen(
                # -S: no site-packages to scan (an editable install's finder, .pth files): it
                # starts as a run does, on a busy core, and needs only this package.
                [sys.executable, "-S", "-m", "runner.watchdog", str(me), start],
                env={**os.environ, "PYTHONPATH": path},
                # Holds none of our pipes: whoever reads our output sees its end with us.
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # not in our group: Ctrl-C and killpg spare it
            )
        except OSError as exc:
            log.warning("no watchdog for this process's runs: %s", exc)
