"""Fork safety: a fork worker does not share the connections user code opened at import time.

The fork engine's controller imports the conftests and test modules (collection), then
forks its workers. A connection opened at import time (a database, Redis, an HTTP
keep-alive socket) would then be one stream used by every worker: their bytes interleave and
the protocol breaks in ways that are hard to trace. Under pytest-xdist each worker imports
the modules itself and has its own connection.

So each worker, right after the fork, makes unusable in its own process every connected
stream socket that appeared after pytest loaded the plugin (``record_baseline``, called when
``fork.options`` is imported: with ``-p``, before any conftest): a fresh unconnected socket of the
same kind is ``dup2``-ed onto the descriptor. The number stays taken (a later socket cannot
reuse it, so a stale object cannot write into another connection), nothing is sent on the
shared connection (a PostgreSQL Terminate would end the session for every process), and the
controller's connection is untouched. Code using the inherited object gets an immediate
OSError (EPIPE, ENOTCONN or EINVAL), which client libraries report as a lost connection;
many reconnect on their own. If Django is imported, the worker also drops (never closes)
its initialized database connections, so the next query opens the worker's own.

Left shared: sockets open before the plugin loaded (the runner's, stdout...), listening,
unconnected and datagram sockets, Unix sockets whose peer has no name (socketpairs, e.g. an
asyncio loop's self-pipe), in-memory SQLite databases (the worker has its own copy) and
non-socket handles such as an SQLite file opened without Django. Linux only, like the engine.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import sys
from collections.abc import Iterable
from typing import Any

_FAMILIES = (socket.AF_INET, socket.AF_INET6, socket.AF_UNIX)
_TYPES = (socket.SOCK_STREAM, socket.SOCK_SEQPACKET)

# (st_dev, st_ino) of the sockets open when the plugin loaded. By identity, not by number:
# a dup of such a socket (pytest's capture saves stdout that way) is no user connection.
_baseline: frozenset[tuple[int, int]] | None = None
# Connection objects taken from Django in a worker: kept referenced so that their finalizers
# (which would talk to the server, or to the SQLite file) never run there; workers os._exit.
_abandoned: list[Any] = []


def _open_sockets() -> dict[int, tuple[int, int]]:
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return {}
    sockets = {}
    for name in names:
        fd = int(name)
        try:
            st = os.fstat(fd)
        except OSError:  # the descriptor listdir used, closed since
            continue
        if stat.S_ISSOCK(st.st_mode):
            sockets[fd] = (st.st_dev, st.st_ino)
    return sockets


def record_baseline() -> None:
    """Remember the sockets open now: they predate user code, workers leave them alone."""
    global _baseline
    if _baseline is None:
        _baseline = frozenset(_open_sockets().values())


def _connection_kind(fd: int) -> tuple[int, int, int] | None:
    """(family, type, proto) when ``fd`` is a connected stream socket to a named peer."""
    dup = os.dup(fd)  # the probe owns (and closes) a copy: the original is never touched
    try:
        probe = socket.socket(fileno=dup)
    except OSError:
        os.close(dup)
        return None
    with probe:
        if probe.family not in _FAMILIES or probe.type not in _TYPES:
            return None
        try:
            if probe.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
                return None
            peer = probe.getpeername()
        except OSError:  # not connected
            return None
        if probe.family == socket.AF_UNIX and not peer:
            return None  # a socketpair or an accepted connection: both ends are local
        return probe.family, probe.type, probe.proto


def _replace(fd: int, kind: tuple[int, int, int]) -> None:
    inheritable = os.get_inheritable(fd)
    blocking = os.get_blocking(fd)
    with socket.socket(*kind) as fresh:
        fresh.setblocking(blocking)
        os.dup2(fresh.fileno(), fd, inheritable=inheritable)


def _drop_django_connections() -> int:
    conf, db = sys.modules.get("django.conf"), sys.modules.get("django.db")
    connections = getattr(db, "connections", None)
    if conf is None or connections is None or not conf.settings.configured:
        return 0  # without settings no connection can be open (and none is imported here)
    try:
        wrappers = connections.all(initialized_only=True)
    except TypeError:  # Django < 4.1
        wrappers = [connections[a] for a in connections if hasattr(connections._connections, a)]
    dropped = 0
    for wrapper in wrappers:
        raw = getattr(wrapper, "connection", None)
        in_memory = getattr(wrapper, "is_in_memory_db", None)
        if raw is None or (callable(in_memory) and in_memory()):
            continue
        _abandoned.append(raw)
        wrapper.connection = None  # Django connects again on next use
        dropped += 1
    return dropped


def isolate_inherited(keep: Iterable[int] = ()) -> list[int]:
    """In a just-forked worker: disable the connections inherited from user code.

    ``keep`` are the engine's own descriptors. Returns the descriptors it replaced.
    """
    if _baseline is None:  # never recorded: everything would look like user code
        return []
    keep = set(keep)
    replaced = []
    for fd, identity in _open_sockets().items():
        if fd in keep or identity in _baseline:
            continue
        with contextlib.suppress(OSError):
            kind = _connection_kind(fd)
            if kind is not None:
                _replace(fd, kind)
                replaced.append(fd)
    with contextlib.suppress(Exception):  # never the reason a worker cannot start
        _drop_django_connections()
    return replaced
