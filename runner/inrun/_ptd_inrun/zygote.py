"""A warm start for runs: a suite's interpreter with pytest and its plugins already imported.

``python -m _ptd_inrun.zygote`` is started by the dashboard's runner (``runner.warm``) in a
suite's directory, with the environment that suite's runs get. It imports pytest, pytest's
own plugins, the plugins installed for the ``pytest11`` entry point and ours, then waits on
the socket it was given (``PTD_ZYGOTE_FD``). For each run it forks: the child becomes a new
session leader, takes the run's log and event pipe as its fds, sets the run's environment
and arguments, and runs ``python -m pytest`` from there, exactly as a fresh interpreter
would after those imports. The zygote reaps it and reports its exit status.

Nothing of the suite itself (conftests, test modules, the code under test) is imported
here, so edits to it are always seen. What *is* imported is checked before every fork:
when a module file or a ``sys.path`` directory (the suite's own aside) changed (a plugin
upgraded, a package installed), the zygote answers "stale", and the runner starts that run
cold and a fresh zygote after it.

It watches the server that started it (a pidfd): when the server dies, however it died, the
runs it forked are ended (their process groups, their cgroup, whatever carries their cookie)
and the zygote leaves, so no run goes on, with no one left to time it out, after its server.
(A parent-death signal cannot serve here: it is tied to the server's thread that forked the
zygote, which ends long before the server.) A run outlives its zygote, though: the server
still supervises it.

Messages are JSON, one per SOCK_SEQPACKET packet; fds travel as SCM_RIGHTS.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import os
import select
import signal
import socket
import sys

from . import lifeline

MAX_MESSAGE = 1 << 20
PACKAGE = "_ptd_inrun"
PLUGIN = "_ptd_inrun.plugin"  # loaded with -p by every run


def preload() -> None:
    """Import what every run of this interpreter imports before it reads the suite.

    pytest rewrites the asserts of plugin modules as it imports them (every module of a
    distribution with a ``pytest11`` entry point, and ``-p`` plugins such as ours): those
    are imported here only to load what they import, then forgotten, so each run imports
    them again through pytest's rewriting hook, as a fresh interpreter would.
    """
    import pytest  # noqa: F401
    from _pytest import config

    for name in config.default_plugins:
        with contextlib.suppress(Exception):
            importlib.import_module(f"_pytest.{name}")
    # Ours too, whole: its modules keep state of the process that imported them (the
    # fork engine's fork-safety baseline of open sockets, for one).
    rewritten = {PACKAGE}
    if not os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        from importlib.metadata import distributions, entry_points

        for ep in entry_points(group="pytest11"):
            with contextlib.suppress(Exception):  # the run will meet the same error itself
                importlib.import_module(ep.module)
        files = (
            str(file)
            for dist in distributions()
            if any(ep.group == "pytest11" for ep in dist.entry_points)
            for file in dist.files or []
        )
        with contextlib.suppress(Exception):
            rewritten.update(config._iter_rewritable_modules(files))
    with contextlib.suppress(Exception):
        importlib.import_module(PLUGIN)
    forget(rewritten)
    # What is loaded now is every run's: out of the collector's sight, so no run's garbage
    # collection walks (and copies, page by page) the zygote's objects.
    gc.collect()
    gc.freeze()


def forget(names: set[str]) -> None:
    """Drop modules ``names`` (and their submodules) and every module that refers to them.

    A kept module holding a forgotten module, or a function or class of one, would keep
    a second copy of it alive in the run: it goes too, until none does.
    """
    gone = {
        name
        for name in sys.modules
        if name in names or any(name.startswith(n + ".") for n in names)
    }
    while gone:
        dropped = {id(sys.modules.pop(name)) for name in gone if name in sys.modules}
        dropped_names = set(gone)
        gone = set()
        for name, module in list(sys.modules.items()):
            values = getattr(module, "__dict__", {}).values()
            for value in list(values):
                if id(value) in dropped or getattr(value, "__module__", None) in dropped_names:
                    gone.add(name)
                    break


def _stamp(path: str) -> tuple[int, int, int] | None:
    """What changes when a file or folder is rewritten, replaced or (dis)appears."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino


def _snapshot() -> dict[str, tuple[int, int, int] | None]:
    """A stamp of every imported module's file and of every ``sys.path`` directory.

    Except the suite's own directory (first on the path, as with ``python -m pytest``):
    nothing is preloaded from it, and it changes with every checkout. A path folder that
    does not exist yet counts too: once created, a fresh interpreter would import from it.
    """
    cwd = os.getcwd()
    paths = {p for p in sys.path if p and os.path.abspath(p) != cwd}
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if isinstance(path, str):
            paths.add(path)
    return {path: _stamp(path) for path in paths}


def _stale(stamps: dict[str, tuple[int, int, int] | None]) -> bool:
    return any(_stamp(path) != stamp for path, stamp in stamps.items())


def _send(sock: socket.socket, **message: object) -> None:
    sock.send(json.dumps(message).encode())


def end_runs(children: dict[int, tuple[int, dict]], cookie: str | None) -> None:
    """The server is gone: SIGKILL every run forked here and all it started."""
    for pid, request in children.values():
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)
        if request.get("cgroup"):
            lifeline.cgroup_kill(request["cgroup"])
    if cookie:
        lifeline.signal_carriers(cookie, signal.SIGKILL)


def serve(
    sock: socket.socket, server: int | None = None, cookie: str | None = None
) -> tuple[dict, list[int]] | None:
    """Fork a child per request; return the request in that child, None when told to stop
    (or when the server, whose pidfd is ``server``, is gone)."""
    stamps = _snapshot()
    _send(sock, ready=True, pid=os.getpid())
    children: dict[int, tuple[int, dict]] = {}  # pidfd -> (pid, request)
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    if server is not None:
        poller.register(server, select.POLLIN)
    listening = True
    stale = False
    while listening or children:
        for fd, _ in poller.poll():
            if fd == server:  # readable once the server has exited
                end_runs(children, cookie)
                poller.unregister(server)
                server = None
                if listening:
                    poller.unregister(sock.fileno())
                    listening = False
                continue
            if fd in children:
                pid, request = children.pop(fd)
                poller.unregister(fd)
                os.close(fd)
                _, status = os.waitpid(pid, 0)
                with contextlib.suppress(OSError):  # the runner may be gone
                    _send(sock, id=request["id"], exit=os.waitstatus_to_exitcode(status))
                continue
            if not listening:
                continue
            data, fds, _, _ = socket.recv_fds(sock, MAX_MESSAGE, 4)
            if not data:  # no more runs: report the running ones' exits, then go
                poller.unregister(sock.fileno())
                listening = False
                continue
            request = json.loads(data)
            stale = stale or _stale(stamps)
            if stale:  # every request from now on, until the runner lets us go
                for received in fds:
                    os.close(received)
                _send(sock, id=request["id"], stale=True)
                continue
            ready_r, ready_w = os.pipe()
            pid = os.fork()
            if pid == 0:
                sock.close()
                for pidfd in children:
                    os.close(pidfd)
                if server is not None:
                    os.close(server)
                os.close(ready_r)
                os.setsid()  # before we answer: the runner may signal its group at once
                lifeline.join_cgroup(request.get("cgroup"))  # before any of the run's code
                os.close(ready_w)
                if cookie:  # the run's processes carry the cookie its environment shows
                    request["env"][lifeline.COOKIE_VAR] = cookie
                return request, fds
            os.close(ready_w)
            os.read(ready_r, 1)  # EOF once the child leads its session (or died)
            os.close(ready_r)
            _send(sock, id=request["id"], pid=pid)  # then at once: it must not start twice
            for received in fds:
                os.close(received)
            pidfd = os.pidfd_open(pid)
            children[pidfd] = (pid, request)
            poller.register(pidfd, select.POLLIN)
    return None


def become_run(request: dict, fds: list[int]) -> None:
    """In the forked child (already its session's leader): the run's fds, env, argv."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    log_fd, events_fd = fds
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(null)
    os.close(log_fd)
    os.set_inheritable(events_fd, True)
    os.chdir(request["cwd"])
    env = dict(request["env"])
    env["PTD_EVENTS_FD"] = str(events_fd)
    os.environ.clear()
    os.environ.update(env)
    sys.argv = [sys.argv[0], *request["args"]]
    # As a cold start's (`python -m pytest ARGS`), for code that re-executes itself from it.
    if hasattr(sys, "orig_argv"):  # Python 3.10+
        sys.orig_argv = [sys.orig_argv[0], "-m", "pytest", *request["args"]]


def main() -> None:
    sock = socket.socket(fileno=int(os.environ.pop("PTD_ZYGOTE_FD")))
    if not all(hasattr(os, f) for f in ("pidfd_open", "waitstatus_to_exitcode", "setsid")):
        return  # an older Python: the runner starts its runs cold
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the runner decides when we go
    parent = os.getppid()
    try:
        server: int | None = os.pidfd_open(parent)
    except OSError:
        server = None
    if os.getppid() != parent:  # the server died as we started
        return
    cookie = os.environ.get(lifeline.COOKIE_VAR)
    preload()
    served = serve(sock, server, cookie)
    if served is None:
        return
    become_run(*served)
    import runpy

    # sys.stdout/stderr/stdin already write to and read from fds 1, 2 and 0: now the run's.
    runpy.run_module("pytest", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
