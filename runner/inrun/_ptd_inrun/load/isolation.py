"""Many users, one pytest session: what lets threads of one process run tests at once.

pytest runs one test at a time: its ``SetupState`` is one stack of set-up nodes, a function
fixture's value lives on its ``FixtureDef`` (``cached_result``), an item holds its own
``funcargs`` and request. Load mode runs each user in a thread of a load process, so:

* ``session._setupstate`` becomes a ``ThreadSetupState``: a user thread gets a
  ``UserSetupState`` of its own for its item, while collectors (session, packages, modules,
  classes) are set up once per process in ``SharedNodes``, under a lock, and torn down once
  when the load is over (``SharedNodes.teardown``) — session and module fixtures, a live
  server, are started once per process, not per iteration.
* function-scoped ``FixtureDef``s keep ``cached_result`` and their finalizers per thread
  (``_localize``); wider ones (class scope too) are shared, set up under the same lock, and do
  not keep a finalizer per iteration of the narrower fixtures that use them (pytest would
  keep one per test: here a million iterations would keep a million).
* each user runs its own shallow copy of each item (``clone``): own funcargs, request, stash
  and report sections; a test method gets a fresh instance of its class per iteration.
* ``PYTEST_CURRENT_TEST`` is not set (there is no one current test).
* formatting a failure is serialized (``_serialized``: CPython 3.11's parser is not
  thread-safe).
* output capture, which swaps process-wide ``sys.stdout`` / file descriptors per test phase,
  is off (``quiet_capture``); what tests print is discarded.

Not shared-safe, documented: a module- or session-scoped fixture parametrized with several
values used by concurrent users is set up again whenever the value changes, under the users
that still hold the old one.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import os
import sys
import threading
from collections.abc import Callable
from typing import Any

import pytest
from _pytest.outcomes import OutcomeException

LOCAL_SCOPES = ("function",)
TEST_OUTCOME = (OutcomeException, Exception)
_local = threading.local()
_fixture_lock = threading.RLock()


class SharedNodes:
    """Collectors set up once per process; their finalizers run at the end, in reverse."""

    def __init__(self) -> None:
        self.lock = _fixture_lock
        self.stack: dict[Any, tuple[list[Callable[[], object]], Any]] = {}

    def setup_parents(self, item: pytest.Item) -> None:
        for col in item.listchain()[:-1]:
            known = self.stack.get(col)
            if known is None:
                with self.lock:
                    known = self.stack.get(col)
                    if known is None:
                        self.stack[col] = ([col.teardown], None)
                        try:
                            col.setup()
                        except TEST_OUTCOME as exc:
                            self.stack[col] = (self.stack[col][0], (exc, exc.__traceback__))
                        known = self.stack[col]
            if known[1] is not None:
                exc, tb = known[1]
                raise exc.with_traceback(tb)

    def addfinalizer(self, finalizer: Callable[[], object], node: Any) -> None:
        with self.lock:
            assert node in self.stack, (node, self.stack)
            self.stack[node][0].append(finalizer)

    def teardown(self) -> list[BaseException]:
        """Everything, newest first (the main thread, once every user has stopped)."""
        return run_finalizers(self.stack)


class UserSetupState:
    """One user's SetupState: its own item on top of the process's shared collectors."""

    def __init__(self, shared: SharedNodes) -> None:
        self.shared = shared
        self.own: dict[Any, tuple[list[Callable[[], object]], Any]] = {}

    @property
    def stack(self) -> dict:
        return {**self.shared.stack, **self.own}

    def is_node_active(self, node: Any) -> bool:
        return node in self.own or node in self.shared.stack

    def setup(self, item: pytest.Item) -> None:
        self.shared.setup_parents(item)
        assert not self.own, "previous item was not torn down properly"
        self.own[item] = ([item.teardown], None)
        item.setup()

    def addfinalizer(self, finalizer: Callable[[], object], node: Any) -> None:
        entry = self.own.get(node)
        if entry is not None:
            entry[0].append(finalizer)
        else:
            self.shared.addfinalizer(finalizer, node)

    def teardown_exact(self, nextitem: Any) -> None:
        errors = run_finalizers(self.own)
        if len(errors) == 1:
            raise errors[0]
        if errors:
            raise BaseExceptionGroup("errors during test teardown", errors[::-1])


class ThreadSetupState:
    """``session._setupstate`` in a load process: the calling user's, or the original one."""

    def __init__(self, original: Any) -> None:
        self._original = original

    def __getattr__(self, name: str) -> Any:
        return getattr(getattr(_local, "state", None) or self._original, name)


def enter_user(shared: SharedNodes) -> None:
    """Called first thing in a user's thread."""
    _local.state = UserSetupState(shared)


def _localize(fixturedef: Any) -> None:
    """Give a function/class fixture per-thread state; make a wider one drop finalizers of
    narrower fixtures (torn down with their item anyway, before the shared ones)."""
    cls = type(fixturedef)
    if getattr(cls, "_ptd_load", False):
        return
    local = fixturedef.scope in LOCAL_SCOPES
    fixturedef.__class__ = _LOCAL_CLASSES(cls) if local else _SHARED_CLASSES(cls)


def _state(fixturedef: Any) -> threading.local:
    store = fixturedef.__dict__.get("_ptd_state")
    if store is None:
        with _fixture_lock:
            store = fixturedef.__dict__.setdefault("_ptd_state", threading.local())
    return store


def _get_cached(self: Any) -> Any:
    return getattr(_state(self), "cached_result", None)


def _set_cached(self: Any, value: Any) -> None:
    _state(self).cached_result = value


def _get_finalizers(self: Any) -> list:
    store = _state(self)
    fins = getattr(store, "finalizers", None)
    if fins is None:
        fins = store.finalizers = []
    return fins


def _set_finalizers(self: Any, value: list) -> None:
    _state(self).finalizers = value


@functools.cache
def _LOCAL_CLASSES(base: type) -> type:  # noqa: N802 - a class factory
    return type(
        base.__name__,
        (base,),
        {
            "_ptd_load": True,
            "cached_result": property(_get_cached, _set_cached),
            "_finalizers": property(_get_finalizers, _set_finalizers),
        },
    )


def _shared_execute(self: Any, request: Any) -> Any:
    with _fixture_lock:
        return super(type(self), self).execute(request)


def _shared_addfinalizer(self: Any, finalizer: Callable[[], object]) -> None:
    owner = getattr(getattr(finalizer, "func", None), "__self__", None)
    if getattr(type(owner), "_ptd_load", False) and owner.scope in LOCAL_SCOPES:
        return
    with _fixture_lock:
        super(type(self), self).addfinalizer(finalizer)


@functools.cache
def _SHARED_CLASSES(base: type) -> type:  # noqa: N802 - a class factory
    return type(
        base.__name__,
        (base,),
        {"_ptd_load": True, "execute": _shared_execute, "addfinalizer": _shared_addfinalizer},
    )


def prepare_session(session: pytest.Session) -> SharedNodes:
    """In a load process, before its users start: the thread-aware state above."""
    manager = session._fixturemanager
    for name in ("_arg2node2fixturedefs", "_arg2nodeid2fixturedefs", "_arg2fixturedefs"):
        for per_name in list((getattr(manager, name, None) or {}).values()):
            groups = per_name.values() if isinstance(per_name, dict) else [per_name]
            for defs in list(groups):
                for fixturedef in defs:
                    _localize(fixturedef)
    for item in session.items:
        info = getattr(item, "_fixtureinfo", None)
        for defs in (getattr(info, "name2fixturedefs", None) or {}).values():
            for fixturedef in defs:
                _localize(fixturedef)
    session._setupstate = ThreadSetupState(session._setupstate)
    # PYTEST_CURRENT_TEST names "the" running test: with many at once there is none, and
    # setting / popping it from several threads raises KeyError.
    import _pytest.runner

    _pytest.runner._update_current_test_var = lambda item, when: None
    os.environ.pop("PYTEST_CURRENT_TEST", None)
    return SharedNodes()


def clone(item: pytest.Item) -> pytest.Item:
    """A user's own copy of ``item``: same node id, parents, marks and fixtures."""
    twin = copy.copy(item)
    twin.__dict__.pop("_request", None)
    twin.__dict__.pop("funcargs", None)
    if hasattr(twin, "_initrequest"):
        twin._initrequest()
    stash = type(item.stash)()
    with contextlib.suppress(AttributeError):
        stash._storage = dict(item.stash._storage)
    twin.stash = stash
    twin._report_sections = []
    twin.user_properties = list(item.user_properties)
    for name in ("repr_failure", "_repr_failure_py"):
        method = getattr(twin, name, None)
        if method is not None:
            setattr(twin, name, _serialized(method))
    return twin


_format_lock = threading.RLock()  # repr_failure calls _repr_failure_py


def _serialized(method: Callable[..., Any]) -> Callable[..., Any]:
    """Formatting a failure parses source with ``ast``, which CPython 3.11 cannot do in two
    threads at once ("AST constructor recursion depth mismatch"): one at a time."""

    @functools.wraps(method)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with _format_lock:
            return method(*args, **kwargs)

    return locked


def fresh_instance(item: pytest.Item) -> None:
    """A test method gets a new instance of its class for each iteration, as each test does."""
    if isinstance(getattr(item, "parent", None), pytest.Class):
        item.__dict__.pop("_instance", None)
        item.__dict__.pop("_obj", None)


def quiet_capture(config: pytest.Config) -> None:
    """Stop pytest's per-phase output capture (process-wide state, not thread-safe) and
    discard what tests print: a load writes the same lines thousands of times."""
    capman = config.pluginmanager.get_plugin("capturemanager")
    if capman is not None:
        with contextlib.suppress(Exception):
            capman.stop_global_capturing()
        capman.item_capture = lambda when, item: contextlib.nullcontext()
    devnull = open(os.devnull, "w")  # noqa: SIM115 - for the process's life
    sys.stdout = devnull
    with contextlib.suppress(OSError):
        os.dup2(devnull.fileno(), 1)


def run_finalizers(stack: dict) -> list[BaseException]:
    """Pop ``stack`` (node -> (finalizers, ...)) newest node first, each node's finalizers
    newest first, as pytest's SetupState does; the errors raised, in order."""
    errors: list[BaseException] = []
    while stack:
        _node, (finalizers, _) = stack.popitem()
        while finalizers:
            fin = finalizers.pop()
            try:
                fin()
            except TEST_OUTCOME as exc:
                errors.append(exc)
    return errors
