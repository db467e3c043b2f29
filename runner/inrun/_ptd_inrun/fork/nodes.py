"""Small pieces of the fork engine's controller: worker handles, xdist-like nodes, ids."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time

from .wire import FrameReader


class Gateway:
    __slots__ = ("id",)

    def __init__(self, id_: str) -> None:
        self.id = id_


class WorkerNode:
    """What xdist puts on ``report.node``: enough for code that reads ``node.gateway.id``."""

    def __init__(self, worker_id: str, workerinput: dict) -> None:
        self.gateway = Gateway(worker_id)
        self.workerinput = workerinput
        self.workeroutput: dict = {}
        # Read by pytest's report.toterminal() for the "[gw0] linux -- Python ..." line.
        self.workerinfo = {
            "id": worker_id,
            "version_info": tuple(sys.version_info),
            "sysplatform": sys.platform,
            "executable": sys.executable,
            "cwd": os.getcwd(),
        }

    def __repr__(self) -> str:
        return f"<WorkerNode {self.gateway.id}>"


class Handle:
    """The controller's side of one worker process."""

    def __init__(self, worker_id: str, pid: int, cmd_fd: int, res_fd: int, wake_fd: int) -> None:
        self.id = worker_id
        self.pid = pid
        self.cmd_fd = cmd_fd
        self.res_fd: int | None = res_fd
        self.wake_fd: int | None = wake_fd  # rung when its results should be read at once
        self.pidfd: int | None = None
        self.reader = FrameReader()
        self.shutdown_sent = False
        self.stop_sent = False
        self.said_bye = False
        self.fatal: str | None = None
        self.status: int | None = None  # wait status, once reaped

    def fds(self) -> list[int]:
        return [fd for fd in (self.cmd_fd, self.res_fd, self.wake_fd, self.pidfd) if fd is not None]


def stop_on_collection_errors(session) -> None:
    """What pytest's own runtestloop does first, for a controller that replaces it: collection
    errors end the session (unless --continue-on-collection-errors)."""
    if session.testsfailed and not session.config.option.continue_on_collection_errors:
        errors = session.testsfailed
        raise session.Interrupted(f"{errors} error{'s' if errors != 1 else ''} during collection")


def describe_exit(status: int) -> str:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(sig).name}"
        return f"killed by signal {sig}"
    return f"exit code {os.waitstatus_to_exitcode(status)}"


def kill_all(handles: dict[str, Handle], grace: float = 2.0) -> None:
    """End every worker (SIGTERM, SIGKILL after ``grace`` s), reap it, close its fds; the
    handles are cleared."""
    if not handles:
        return
    for handle in handles.values():
        with contextlib.suppress(ProcessLookupError):
            os.kill(handle.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for handle in list(handles.values()):
        while True:
            pid, _ = os.waitpid(handle.pid, os.WNOHANG)
            if pid or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        if not pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(handle.pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(handle.pid, 0)
        for fd in handle.fds():
            with contextlib.suppress(OSError):
                os.close(fd)
    handles.clear()
