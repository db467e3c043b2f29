"""Warm starts: keep a suite's interpreter with pytest imported, fork each run from it.

A cold run spends its first ~0.5 s starting Python and importing pytest and every installed
plugin, the same for every run of a suite. A long-lived runner (the dashboard's) keeps one
*zygote* ready per (interpreter, directory, environment): ``python -m _ptd_inrun.zygote``,
which does those imports ahead of the run and forks its pytest process on request (see that
module for what the child does). The run is then an ordinary pytest process in its own
session; only its parent differs, so its exit status comes back over the zygote's socket.
Each zygote forks one run, and the next one is started when that run is over.

Whatever goes wrong on this path (no ``pidfd_open``, a zygote that will not start, dies, or
finds its imports stale) makes ``Zygotes.spawn`` return None, and the pool starts the run
cold as always; so does the first run of a key, there being no zygote ready for it yet. A
run may wait for a zygote still starting (the previous run ended a moment ago): that time
counts in its wall time, as it should.

A zygote watches the server; if the server dies, it ends the runs it forked, all they
started, and itself (see ``_ptd_inrun.zygote``). Its cookie (``PTD_RUN_COOKIE``) is its run's.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import os
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence

from _ptd_inrun.lifeline import COOKIE_VAR, new_cookie

from . import procs

log = logging.getLogger(__name__)

MODULE = "_ptd_inrun.zygote"
# Set per run by the pool (the zygote takes them from the request, not from its own env).
# The run's cookie is the one exception: a zygote has its own, which its run keeps (a fork
# keeps its parent's environment block: /proc shows the zygote's to the run's processes).
# What tests printed: the reporter reads its caps and capture_passed from os.environ, which the
# zygote sets from the request, so a run asking for passing output still gets a warm start.
OUTPUT_VARS = ("PTD_CAPTURE_PASSED", "PTD_MAX_OUTPUT_PER_TEST", "PTD_MAX_OUTPUT_PER_RUN")
PER_RUN_VARS = frozenset({"PTD_EVENTS_FD", "PTD_DURATIONS_FILE", COOKIE_VAR, *OUTPUT_VARS})
READY_TIMEOUT = 60.0
REPLY_TIMEOUT = 30.0
REPORT_TIMEOUT = 5.0  # after the run's process is gone, for the zygote to say how it ended
MAX_MESSAGE = 1 << 20


def supported() -> bool:
    return sys.platform.startswith("linux") and hasattr(os, "pidfd_open")


class ZygoteProc:
    """The part of ``subprocess.Popen`` the pool uses, for a process forked by a zygote."""

    def __init__(self, pid: int, cookie: str, zygote_pid: int) -> None:
        self.pid = pid
        self.cookie = cookie  # its zygote's, which every process of the run carries
        self.zygote_pid = zygote_pid
        self.returncode: int | None = None
        self._settled = threading.Event()  # its exit reported, or its zygote gone
        try:
            self._pidfd: int | None = os.pidfd_open(pid)
        except OSError:  # already gone and reaped: the zygote's report says how it ended
            self._pidfd = None

    def _report(self, code: int) -> None:
        self.returncode = code
        self._settled.set()

    def wait(self) -> int:
        if self._pidfd is not None:
            poller = select.poll()
            poller.register(self._pidfd, select.POLLIN)
            poller.poll()  # readable once the process has terminated
            os.close(self._pidfd)
            self._pidfd = None
        self._settled.wait(REPORT_TIMEOUT)
        if self.returncode is None:
            # The zygote died first: the run was reparented, perhaps to us (a subreaper).
            code = -1
            with contextlib.suppress(ChildProcessError, OSError):
                pid, status = os.waitpid(self.pid, os.WNOHANG)
                if pid == self.pid:
                    code = os.waitstatus_to_exitcode(status)
            self.returncode = code
        return self.returncode


class Zygote:
    """One kept interpreter, for one run (see ``Zygotes``)."""

    def __init__(self, python: str, cwd: str, env: Mapping[str, str]) -> None:
        self.key = Zygotes._key([python, "-m", "pytest"], cwd, env)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock = ours
        self.started = time.monotonic()
        self.dead = False  # no run from it (used, stale, closed or gone)
        self._ready = threading.Event()
        self._lock = threading.Lock()
        # Its answer to the run's request, the run, and how it ended; under _lock.
        self._answered = threading.Event()
        self._answer: dict = {}
        self._given_up = False  # no answer in time: the run started cold, a late fork dies
        self._proc: ZygoteProc | None = None
        self._exit: int | None = None  # reported before spawn() had the run's pid
        self._gone = False  # its socket is closed: no more answers or exit reports
        self.cookie = new_cookie()
        try:
            self.proc = subprocess.Popen(
                [python, "-m", MODULE],
                cwd=cwd,
                env={**env, "PTD_ZYGOTE_FD": str(theirs.fileno()), COOKIE_VAR: self.cookie},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                pass_fds=(theirs.fileno(),),
                start_new_session=True,
            )
        except (OSError, ValueError, subprocess.SubprocessError):
            ours.close()
            self.dead = self._gone = True
            return
        finally:
            theirs.close()
        self._reader = threading.Thread(target=self._read, name="ptd-zygote", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = self.sock.recv(MAX_MESSAGE)
            except OSError:
                data = b""
            if not data:
                break
            try:
                message = json.loads(data)
            except ValueError:
                break
            if message.get("ready"):
                self._ready.set()
            elif "exit" in message:
                with self._lock:
                    proc = self._proc
                    if proc is None:
                        self._exit = int(message["exit"])
                if proc is not None:
                    proc._report(int(message["exit"]))
            else:  # the answer to the request: a pid, or stale
                with self._lock:  # answered and given up on are decided under one lock
                    late = self._given_up
                    if not late:
                        self._answer.update(message)
                        self._answered.set()
                if late and isinstance(message.get("pid"), int) and message["pid"] > 1:
                    # Its run was started cold meanwhile: this copy must not run too. (The
                    # zygote answers once the child leads its own process group.)
                    with contextlib.suppress(OSError):
                        os.killpg(message["pid"], 9)
        self.dead = True
        self._ready.set()
        with self._lock:
            self._gone = True
            proc = self._proc
            self._answered.set()
        if proc is not None:
            proc._settled.set()  # no report will come
        with contextlib.suppress(OSError):
            self.sock.close()
        with contextlib.suppress(Exception):
            self.proc.wait(5)

    def spawn(
        self,
        args: Sequence[str],
        cwd: str,
        env: Mapping[str, str],
        log_fd: int,
        events_fd: int,
        cgroup: str | None = None,
    ) -> ZygoteProc | None:
        """Fork the run (``python -m pytest *args``), in ``cgroup`` if one is given; None if
        this zygote cannot."""
        if self.dead or not self._ready.wait(READY_TIMEOUT) or self.dead:
            return None
        self.dead = True  # one run only
        request = {"id": 1, "args": list(args), "cwd": cwd, "env": dict(env), "cgroup": cgroup}
        try:
            socket.send_fds(self.sock, [json.dumps(request).encode()], [log_fd, events_fd])
        except OSError as exc:
            log.info("zygote unusable (%s); starting the run cold", exc)
            return None
        self._answered.wait(REPLY_TIMEOUT)
        with self._lock:
            pid = self._answer.get("pid")
            if not isinstance(pid, int):
                self._given_up = True
                return None  # stale, dead or silent
            proc = self._proc = ZygoteProc(pid, self.cookie, self.proc.pid)
            code, gone = self._exit, self._gone
        if code is not None:
            proc._report(code)
        elif gone:  # its reader has stopped: no report will come
            proc._settled.set()
        return proc

    def close(self) -> None:
        """Let it go: it exits when it reads the end of its socket; runs it forked go on.

        Only our sending side is shut: the reader still hears what it says until it exits.
        """
        self.dead = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)

    def end(self, timeout: float) -> None:
        """Stop it now (the pool shuts down): a zygote still preloading does not read its
        socket, and would go on writing bytecode into the data directory after the server
        left. Runs it forked lead sessions of their own and are not touched."""
        self.close()
        if getattr(self, "proc", None) is None:
            return
        # It leads a session of its own (start_new_session): its group is the zygote alone.
        procs.end_group(self.proc.pid, timeout, leader=self.proc.pid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout)


class Zygotes:
    """At most ``limit`` zygotes, least recently used dropped first, idle ones let go.

    A zygote forks one run only: the interpreter's hash seed is drawn at its start, and runs
    sharing one would iterate sets and dicts of strings in the same order every time, hiding
    the order-dependent flakiness PTD is there to show. ``replenish``, called once a run is
    over, starts the next zygote of its key, off the critical path of any run.
    """

    def __init__(self, limit: int = 4, idle: float = 1800.0, *, replenish: bool = True) -> None:
        """``replenish=False``: a one-shot pool's (``run_suite``): no zygote is started after a
        run, the process leaves; only one ``adopt``-ed ahead of it serves."""
        self.limit = limit
        self.idle = idle
        self._replenish = replenish
        self._lock = threading.Lock()
        self._by_key: collections.OrderedDict[tuple, Zygote] = collections.OrderedDict()
        self._closed = False  # the pool shut down: no zygote is started any more

    @staticmethod
    def _key(argv: Sequence[str], cwd: str, env: Mapping[str, str]) -> tuple | None:
        if not supported() or list(argv[1:3]) != ["-m", "pytest"]:
            return None
        base = {k: v for k, v in env.items() if k not in PER_RUN_VARS}
        return (argv[0], cwd, tuple(sorted(base.items())))

    def spawn(
        self,
        argv: Sequence[str],
        cwd: str,
        env: Mapping[str, str],
        log_fd: int,
        events_fd: int,
        cgroup: str | None = None,
    ) -> ZygoteProc | None:
        key = self._key(argv, cwd, env)
        if key is None:
            return None
        with self._lock:
            self._expire()
            zygote = self._by_key.pop(key, None)
            # A one-shot pool's other zygote (one started ahead for another key) would only
            # take CPU from this run.
            unused = [] if self._replenish else list(self._by_key.values())
            if unused:
                self._by_key.clear()
        for other in unused:
            other.end(timeout=1.0)
        if zygote is None or zygote.dead:
            return None  # none made ready: a cold start is as quick as a new zygote
        proc = zygote.spawn(argv[3:], cwd, env, log_fd, events_fd, cgroup)
        zygote.close()  # used (or stale, or broken): it goes once its run has ended
        return proc

    def replenish(self, argv: Sequence[str], cwd: str, env: Mapping[str, str]) -> None:
        """Have a fresh zygote ready for the next run like this one."""
        key = self._key(argv, cwd, env)
        if key is None or not self._replenish:
            return
        with self._lock:
            if self._closed:  # a run ending as the pool shuts down
                return
            self._expire()
            if key not in self._by_key:
                self._by_key[key] = Zygote(key[0], cwd, dict(key[2]))
            self._keep(key)

    def adopt(self, zygote: Zygote) -> None:
        """Keep a zygote started elsewhere (``run_suite``'s, started before Django): it serves
        the first run of its key. Closed with the others if none has its key."""
        with self._lock:
            if self._closed or zygote.key is None or zygote.key in self._by_key:
                zygote.close()
                return
            self._by_key[zygote.key] = zygote
            self._keep(zygote.key)

    def _keep(self, key: tuple) -> None:
        self._by_key.move_to_end(key)  # most recently used last
        while len(self._by_key) > self.limit:
            self._by_key.popitem(last=False)[1].close()

    def prepare(
        self, argv: Sequence[str], cwd: str, env: Mapping[str, str], timeout: float = READY_TIMEOUT
    ) -> None:
        """Have a zygote for this run ready before it starts (``RunSpec.warm_first``: a sweep's
        first step would otherwise pay a cold start the others do not). One not ready within
        ``timeout`` is dropped: the run then starts cold at once, not after a second wait."""
        self.replenish(argv, cwd, env)
        key = self._key(argv, cwd, env)
        with self._lock:
            zygote = self._by_key.get(key) if key is not None else None
        if zygote is None or (zygote._ready.wait(timeout) and not zygote.dead):
            return
        with self._lock:
            if self._by_key.get(key) is zygote:
                del self._by_key[key]
        zygote.close()

    def _expire(self) -> None:
        now = time.monotonic()
        for key, zygote in list(self._by_key.items()):
            if zygote.dead or now - zygote.started > self.idle:
                self._by_key.pop(key).close()

    def close(self, timeout: float = 2.0) -> None:
        """End every zygote (see Zygote.end) and start no more."""
        with self._lock:
            self._closed = True
            zygotes = list(self._by_key.values())
            self._by_key.clear()
        for zygote in zygotes:
            zygote.end(timeout)
