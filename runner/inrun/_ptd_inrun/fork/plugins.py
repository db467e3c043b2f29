"""What pytest-xdist does for other plugins, done by the fork engine.

* **Crashes** (``pytest_handlecrashitem``, an xdist hookspec). When a worker dies while running
  a test, xdist builds a "???" report and lets plugins look at it before it is logged, with a
  ``sched`` whose ``mark_test_pending(nodeid)`` runs the test again. pytest-rerunfailures
  uses it: under ``--reruns N`` it reschedules the crashed test and turns the report into a
  "rerun". It counts attempts in a status db that the controller serves on a local socket;
  an xdist worker connects to it (``pytest_configure`` on the worker, with the address
  ``pytest_configure_node`` put in ``workerinput``). A fork worker has instead inherited
  the controller's server object, a copy no one else sees, so ``setup_worker`` connects it
  the way xdist's worker would (on first use: runs without reruns open no connection).
  A worker *sets* a test's rerun count without waiting for an answer, then runs the test:
  when the test kills the worker at once, the controller learns of the death (``waitpid``)
  before the server thread has read that count, and would see 0 reruns. ``track_status_db``
  lets the crash handler first wait for the dead worker's connection to be read to its end.
* **Worker output** (``config.workeroutput`` -> ``node.workeroutput`` in
  ``pytest_testnodedown(node, error)``). ``finish_worker`` fills in what xdist's worker
  adds, and gives the dict in a form the worker's pipe can carry (pickle; xdist needs it
  serializable too). A fork worker runs no ``pytest_sessionfinish``: what a plugin would
  only put there is not sent.
* **pytest-cov**. The controller runs ``--cov`` as a serial run would (its "Central"
  controller: coverage started before the conftests are imported, so collection is
  measured there), and every fork worker inherits that running tracer with what it has
  measured so far. coverage.py notices the fork when it saves (new pid: a fresh data file
  with its own suffix, the inherited file state reset), so each worker only has to stop and
  save before it says bye; the controller's ``Central.finish`` combines every
  ``.coverage.*`` file of the run. That Central controller has no ``testnodedown`` (it is
  no xdist controller), so ``node_down`` leaves pytest-cov out of that hook. What a worker
  measured is lost if it crashes (as under xdist).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import sys
import threading
from typing import Any

import pytest

from ..reporter import REPORTER_NAME

_COV_PLUGIN = "_cov"  # the name pytest-cov registers its CovPlugin under
_STATUS_CONNECTIONS = pytest.StashKey[dict]()
_PEER_GONE = select.POLLRDHUP | select.POLLHUP | select.POLLERR
_DRAIN_TIMEOUT = 2.0  # seconds to let the server thread read a dead worker's last messages


# -- the controller --------------------------------------------------------------------------


class CrashSched:
    """The ``sched`` of ``pytest_handlecrashitem``: the config, and a way to run a test again."""

    def __init__(self, config: pytest.Config, items: list[pytest.Item], core: Any, index: int):
        self.config = config
        self._items = items
        self._core = core
        self._index = index

    def mark_test_pending(self, item: str) -> None:
        """Queue the test with node id ``item`` again, ahead of everything else."""
        if self._items[self._index].nodeid == item:
            index = self._index
        else:
            index = next((i for i, it in enumerate(self._items) if it.nodeid == item), None)
            if index is None:  # what xdist's collection.index() does with an unknown id
                raise ValueError(f"{item!r} is not a collected test")
        self._core.mark_pending(index)


def track_status_db(config: pytest.Config) -> None:
    """In the controller, before its workers start (forked, or xdist's): know rerunfailures'
    open worker connections.

    Its server thread accepts each connection and serves it on a thread of its own
    (``run_connection``, looked up on the instance at every accept, so wrapping it on the
    instance covers every worker, all of which connect after the fork).
    """
    module = sys.modules.get("pytest_rerunfailures")
    server = getattr(module, "ServerStatusDB", None)
    db = getattr(config, "failures_db", None)
    if server is None or not isinstance(db, server) or not hasattr(db, "run_connection"):
        return
    if _STATUS_CONNECTIONS in config.stash:
        return  # tracked already
    serve = db.run_connection
    connections: dict[Any, threading.Event] = {}

    def run_connection(conn: Any) -> None:
        done = connections[conn] = threading.Event()
        try:
            serve(_EndsAtEof(conn))
        finally:
            with contextlib.suppress(OSError):
                conn.close()  # rerunfailures < 15 leaves it to the garbage collector
            connections.pop(conn, None)
            done.set()

    db.run_connection = run_connection
    config.stash[_STATUS_CONNECTIONS] = connections


class _EndsAtEof:
    """A worker's connection as the status server reads it, its end of file an error.

    rerunfailures before 15 reads byte by byte until a delimiter and takes ``b""`` (the
    peer gone) for a byte: once a worker had died, its connection's thread spun on
    ``recv`` for good, and with it the controller (both engines: 16 s per crash, seen
    with 14.0). A ``ConnectionError`` ends that loop, as later versions do themselves.
    """

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def recv(self, size: int, *flags: int) -> bytes:
        data = self._conn.recv(size, *flags)
        if not data and size:
            raise ConnectionResetError("the worker closed its status connection")
        return data

    def __enter__(self) -> _EndsAtEof:
        self._conn.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._conn.__exit__(*exc)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def settle_status_db(config: pytest.Config, timeout: float = _DRAIN_TIMEOUT) -> None:
    """Wait until every connection whose worker is gone has been read to its end.

    Called once the crashed worker is reaped: its socket is closed, so its connection shows
    the peer's hang-up (``POLLRDHUP``) while the live workers' connections do not.
    """
    connections = config.stash.get(_STATUS_CONNECTIONS, None)
    for conn, done in list((connections or {}).items()):
        poller = select.poll()
        try:
            poller.register(conn.fileno(), select.POLLRDHUP)
            ready = poller.poll(0)
        except (OSError, ValueError):  # closed meanwhile: its thread is done
            continue
        if ready and ready[0][1] & _PEER_GONE:
            done.wait(timeout)


def handle_crash(
    config: pytest.Config,
    report: pytest.TestReport,
    items: list[pytest.Item],
    core: Any,
    index: int,
) -> None:
    """Before the crash report is logged: let plugins reschedule the test or change the report.

    ``index`` is the crashed item, ``core`` the LPT scheduler. The hook exists only when
    xdist is installed and loaded (it declares it).
    """
    hook = getattr(config.hook, "pytest_handlecrashitem", None)
    if hook is not None:
        settle_status_db(config)
        hook(crashitem=report.nodeid, report=report, sched=CrashSched(config, items, core, index))


def node_down(config: pytest.Config, node: Any, error: str | None) -> None:
    """``pytest_testnodedown(node, error)``, as xdist calls it, for a worker that is gone.

    Plugins implement it as an optional hook, so it exists when one of them is loaded. The
    event Reporter is one: the call becomes its ``worker_down`` event (emitted directly
    only if the hook does not exist).
    """
    pm = config.pluginmanager
    if getattr(pm.hook, "pytest_testnodedown", None) is None:
        reporter = pm.get_plugin(REPORTER_NAME)
        if reporter is not None:
            worker = node.gateway.id
            reporter.emit("worker_down", worker=worker, crashed=error is not None, error=error)
        return
    cov = pm.get_plugin(_COV_PLUGIN)
    controller = getattr(cov, "cov_controller", None)
    if cov is not None and not hasattr(controller, "testnodedown"):
        pm.subset_hook_caller("pytest_testnodedown", [cov])(node=node, error=error)
    else:
        pm.hook.pytest_testnodedown(node=node, error=error)


# -- the worker ------------------------------------------------------------------------------


def setup_worker(config: pytest.Config) -> None:
    """In a fork worker, after the fork-safety pass (it would cut a connection made before)."""
    _connect_rerunfailures(config)


def _connect_rerunfailures(config: pytest.Config) -> None:
    module = sys.modules.get("pytest_rerunfailures")
    server = getattr(module, "ServerStatusDB", None)
    db = getattr(config, "failures_db", None)
    if server is None or not isinstance(db, server):
        return  # not installed, or no xdist: a no-op db, crashes are not rerun
    if not hasattr(db, "sock_port") or not hasattr(module, "ClientStatusDB"):
        return  # another version: the controller said so (compat.fork_gaps)
    token = getattr(db, "token", None)  # older versions have no token
    args = (db.sock_port,) if token is None else (db.sock_port, token)
    with contextlib.suppress(OSError):
        db.sock.close()  # this process's copy of the controller's listening socket
    config.failures_db = _LazyClient(lambda: module.ClientStatusDB(*args), db)


class _LazyClient:
    """rerunfailures' client db, connected on first use (only runs with reruns use it)."""

    def __init__(self, connect: Any, inherited: Any) -> None:
        self._connect = connect
        self._inherited = inherited
        self._db: Any = None

    def __getattr__(self, name: str) -> Any:
        if self._db is None:
            try:
                self._db = self._connect()
            except OSError as exc:  # the run goes on; only crashed tests cannot be rerun
                sys.stderr.write(f"ptd fork engine: rerunfailures' status db: {exc!r}\n")
                self._db = self._inherited
        return getattr(self._db, name)


def finish_worker(config: pytest.Config, session: pytest.Session) -> dict:
    """At the end of a fork worker: save its coverage; return its workeroutput, picklable."""
    _save_coverage(config)
    output = getattr(config, "workeroutput", None)
    if not isinstance(output, dict):
        return {}
    # What xdist's worker adds (xdist's controller reads them).
    output.setdefault("exitstatus", int(pytest.ExitCode.TESTS_FAILED if session.testsfailed else 0))
    output.setdefault("shouldfail", session.shouldfail)
    output.setdefault("shouldstop", session.shouldstop)
    return picklable(output)


def picklable(output: dict) -> dict:
    """``output`` without the entries pickle cannot carry (each one said on stderr)."""
    with contextlib.suppress(Exception):
        pickle.dumps(output)
        return dict(output)
    kept = {}
    for key, value in output.items():
        try:
            pickle.dumps((key, value))
        except Exception as exc:  # noqa: BLE001
            sys.stderr.write(f"ptd fork engine: workeroutput[{key!r}] not sent: {exc!r}\n")
            continue
        kept[key] = value
    return kept


def _save_coverage(config: pytest.Config) -> None:
    plugin = config.pluginmanager.get_plugin(_COV_PLUGIN)
    engine = sys.modules.get("pytest_cov.engine")
    controller = getattr(plugin, "cov_controller", None)
    if engine is None or not isinstance(controller, engine.Central):
        return  # no --cov (or --no-cov)
    if not hasattr(controller, "cov") or not hasattr(controller, "topdir"):
        return  # another version: the controller said so (compat.fork_gaps)
    cov = controller.cov
    # Like pytest-cov's xdist workers: a worker need not have measured every source.
    cov._warn_no_data = False
    cov._warn_unimported_source = False
    cwd = os.getcwd()
    os.chdir(controller.topdir)  # as pytest-cov does: a relative data_file is the run's
    try:
        cov.stop()
        cov.save()
    except Exception as exc:  # noqa: BLE001 - the run's results matter more
        sys.stderr.write(f"ptd fork engine: coverage of this worker not saved: {exc!r}\n")
    finally:
        os.chdir(cwd)
