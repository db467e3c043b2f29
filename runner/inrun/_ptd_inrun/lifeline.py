"""What ties a run's processes to the run, and the run to the server running it (Linux).

Stdlib only: the zygote imports it in a suite's interpreter, the runner in the server's.

Every process of a run carries ``PTD_RUN_COOKIE=<cookie>`` in its environment (exec'd
children inherit it; a fork keeps its parent's environment block), as Jenkins' process-tree
killer marks a build's processes: a child that left the run's process group (``setsid``) is
still found in ``/proc`` by its cookie. A cookie starts with its *owner*, the pid and start
time of the process running the run, so the leftovers of a server that died can be told
from those of a live one. Where cgroup v2 can be used, a run also has a cgroup of its own
(``runner.procs``), which catches even a process that dropped its environment.
"""

from __future__ import annotations

import contextlib
import os
import signal

COOKIE_VAR = "PTD_RUN_COOKIE"
_MARK = COOKIE_VAR.encode() + b"="


def stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state, ppid, ...); None once the
    process is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read().decode("ascii", "replace")
    except OSError:
        return None
    return stat[stat.rfind(")") + 2 :].split()


def start_time(pid: int) -> str | None:
    """The process's start time (clock ticks after boot): with the pid, names it uniquely."""
    fields = stat_fields(pid)
    return fields[19] if fields is not None and len(fields) > 19 else None


def new_cookie(owner_pid: int | None = None) -> str:
    """A cookie for one run, owned by ``owner_pid`` (this process by default)."""
    pid = owner_pid or os.getpid()
    return f"{pid}.{start_time(pid) or 0}.{os.urandom(8).hex()}"


def owner_alive(cookie: str) -> bool:
    """Whether the process that owns ``cookie`` is still the one running (pid reuse aside)."""
    pid, _, rest = cookie.partition(".")
    start = rest.partition(".")[0]
    return pid.isdigit() and start_time(int(pid)) == start


def carriers() -> dict[int, str]:
    """pid -> cookie of every other process carrying a run cookie (that we may read)."""
    found: dict[int, str] = {}
    me = os.getpid()
    try:
        entries = os.listdir("/proc")
    except OSError:
        return found
    for entry in entries:
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as fh:
                environ = fh.read()
        except OSError:  # gone, or not ours to read
            continue
        for item in environ.split(b"\0"):
            if item.startswith(_MARK):
                found[int(entry)] = item[len(_MARK) :].decode("ascii", "replace")
                break
    return found


def signal_carriers(cookie: str, sig: int, exclude: frozenset[int] = frozenset()) -> set[int]:
    """Send ``sig`` to every process carrying ``cookie``; their pids."""
    pids = {pid for pid, value in carriers().items() if value == cookie} - exclude
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, sig)
    return pids


def cgroup_pids(path: str) -> set[int]:
    try:
        with open(os.path.join(path, "cgroup.procs")) as fh:
            return {int(line) for line in fh if line.strip()}
    except (OSError, ValueError):
        return set()


def cgroup_kill(path: str) -> None:
    """SIGKILL everything in the cgroup: at once with ``cgroup.kill`` (Linux 5.14), else
    process by process."""
    try:
        fd = os.open(os.path.join(path, "cgroup.kill"), os.O_WRONLY)
    except OSError:
        fd = None
    if fd is not None:
        try:
            os.write(fd, b"1")
            return
        except OSError:
            pass
        finally:
            os.close(fd)
    for pid in cgroup_pids(path):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def join_cgroup(path: str | None) -> None:
    """Move this process into the cgroup (its children follow); best effort."""
    if not path:
        return
    with contextlib.suppress(OSError):
        fd = os.open(os.path.join(path, "cgroup.procs"), os.O_WRONLY)
        try:
            os.write(fd, b"0")
        finally:
            os.close(fd)
