"""pytest-xdist scheduler (``pytest_xdist_make_scheduler``) on top of the LPT core.

Implements xdist's ``Scheduling`` protocol. Only imported in the controlling process of a
distributed run, so importing xdist here is safe.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import pytest

from ..compat import terminal_gaps, xdist_gaps
from ..groups import controller_dir, publish, read_worker_groups
from ..ids import group_of
from ..reporter import warn
from .core import MODES, LPTScheduler, load_durations

try:  # the helpers live in xdist's internals: compat.xdist_gaps says when they are missing
    from xdist.report import report_collection_diff
except ImportError:  # pragma: no cover - another xdist
    report_collection_diff = None
try:
    from xdist.workermanage import parse_tx_spec_config
except ImportError:  # xdist < 3.6 names it parse_spec_config
    try:
        from xdist.workermanage import parse_spec_config as parse_tx_spec_config
    except ImportError:  # pragma: no cover - another xdist
        parse_tx_spec_config = None


def ptd_schedules(config: pytest.Config) -> bool:
    """Whether PTD's scheduler, not xdist's, distributes this run's tests."""
    if os.environ.get("PTD_SCHEDULER", "") == "xdist":
        return False
    return config.getoption("dist", None) in MODES  # "each", "worksteal", ...: xdist's


def make_scheduler(config: pytest.Config, log: Any) -> PTDScheduling | None:
    if not ptd_schedules(config):
        return None
    for gap in xdist_gaps() + terminal_gaps(config):
        warn(config, gap)
    mode = config.getoption("dist")
    return PTDScheduling(
        config, log, mode=mode, durations=load_durations(os.environ.get("PTD_DURATIONS_FILE"))
    )


class PTDScheduling:
    """Longest-first scheduling with grouping, for ``--dist load|loadscope|loadfile|loadgroup``."""

    def __init__(
        self,
        config: pytest.Config,
        log: Any = None,
        *,
        mode: str = "load",
        durations: dict[str, float] | None = None,
    ) -> None:
        self.config = config
        self.mode = mode
        self.durations = durations or {}
        if parse_tx_spec_config is not None:
            self.numnodes = len(parse_tx_spec_config(config))
        else:  # pragma: no cover
            self.numnodes = len(config.getoption("tx") or [])
        self.log = getattr(log, "ptdsched", None) or (lambda *args: None)
        self.node2collection: dict[Any, list[str]] = {}
        # loadgroup: each worker's groups of its collected tests, from their marks (groups.py)
        self.groups_dir = controller_dir(config) if mode == "loadgroup" else None
        self.node2groups: dict[Any, list[str | None] | None] = {}
        self._nodes: dict[Any, str] = {}
        self._rejected: set[Any] = set()  # replacement nodes that collected other tests
        self.collection: list[str] | None = None
        self.core: LPTScheduler | None = None

    # -- protocol: state -------------------------------------------------------------------

    @property
    def nodes(self) -> list[Any]:
        return list(self._nodes)

    @property
    def collection_is_completed(self) -> bool:
        return len(self.node2collection) >= self.numnodes

    @property
    def tests_finished(self) -> bool:
        if not self.collection_is_completed:
            return False
        if self.core is None:
            return self.collection is not None  # empty or mismatched collection
        return self.core.finished

    @property
    def has_pending(self) -> bool:
        return self.core is not None and self.core.has_pending

    # -- protocol: nodes -------------------------------------------------------------------

    def add_node(self, node: Any) -> None:
        assert node not in self._nodes
        self._nodes[node] = str(node.gateway.id)
        if self.core is not None:
            self.core.add_worker(self._nodes[node])

    def add_node_collection(self, node: Any, collection: Sequence[str]) -> None:
        assert node in self._nodes
        collection = list(collection)
        # A replacement for a crashed worker must have collected the same tests.
        if self.collection is not None and collection != self.collection:
            self._log_diff(self.collection, collection, node)
            self._rejected.add(node)  # its indices would mean other tests: never use it
            return
        self.node2collection[node] = collection
        if self.groups_dir is not None:
            self.node2groups[node] = read_worker_groups(
                self.groups_dir, str(node.gateway.id), len(collection)
            )

    def remove_node(self, node: Any) -> str | None:
        # node2collection keeps the node: collection_is_completed counts every node that
        # ever reported, so a replacement for a crashed worker gets scheduled at once.
        worker = self._nodes.pop(node)
        self._rejected.discard(node)
        if self.core is None:
            return None
        unfinished = self.core.remove_worker(worker)
        self._dispatch_all()
        if not unfinished:
            return None
        return self.core.collection[unfinished[0]]

    # -- protocol: progress ----------------------------------------------------------------

    def mark_test_complete(self, node: Any, item_index: int, duration: float = 0) -> None:
        assert self.core is not None
        self.core.mark_complete(self._nodes[node], item_index)
        self._dispatch(node)

    def mark_test_pending(self, item: str) -> None:
        assert self.core is not None and self.collection is not None
        self.core.mark_pending(self.collection.index(item))
        self._dispatch_all()

    def remove_pending_tests_from_node(self, node: Any, indices: Sequence[int]) -> None:
        assert self.core is not None
        self.core.unassign(self._nodes[node], indices)
        self._dispatch_all()

    def schedule(self) -> None:
        assert self.collection_is_completed
        if self.collection is not None:  # later calls: a replacement node came up
            self._dispatch_all()
            return
        collections = list(self.node2collection.items())
        first_node, first = collections[0]
        same = True
        for node, other in collections[1:]:
            if other != first:
                same = False
                self._log_diff(first, other, node, first_node)
        self.collection = list(first)
        if not same:
            self.log("**Different tests collected, aborting run**")
            return
        if not self.collection:
            for node in self.nodes:
                node.shutdown()
            return
        groups = None
        if self.mode == "loadgroup":
            groups = self._groups(first_node, self.collection)
            publish(self.config, self.collection, groups)
        self.core = LPTScheduler(self.collection, self.durations, self.mode, groups=groups)
        for worker in self._nodes.values():
            self.core.add_worker(worker)
        self._dispatch_all()

    # -- internals -------------------------------------------------------------------------

    def _groups(self, node: Any, collection: list[str]) -> list[str | None]:
        groups = self.node2groups.get(node)
        if groups is not None:
            return groups
        # The worker wrote nothing (its in-run plugin did not load, or it runs on another
        # machine): xdist's "@group" suffix is all there is, and pytest >= 9.2 drops it.
        warn(
            self.config,
            f"--dist loadgroup: worker {node.gateway.id} did not report its tests' "
            "xdist_group marks; grouping by the '@group' suffix of their node ids, which "
            "xdist no longer adds under pytest >= 9.2: grouped tests may run on several "
            "workers at once",
        )
        return [group_of(nodeid) for nodeid in collection]

    def _dispatch_all(self) -> None:
        for node in list(self._nodes):
            self._dispatch(node)

    def _dispatch(self, node: Any) -> None:
        if self.core is None or node.shutting_down:
            return
        if node in self._rejected:
            node.shutdown()
            return
        indices = self.core.next_for_worker(self._nodes[node])
        if indices:
            node.send_runtest_some(indices)
        if not self.core.has_queued:
            # Nothing left to hand out: let every worker run its last item and finish (one
            # may hold a single item, left without a next one for the others to have theirs).
            for other in self._nodes:
                if not other.shutting_down:
                    other.shutdown()

    def _log_diff(self, expected: list[str], got: list[str], node: Any, other: Any = None) -> None:
        other = other or next(iter(self.node2collection), None)
        other_id = getattr(getattr(other, "gateway", None), "id", "?")
        if report_collection_diff is not None:
            msg = report_collection_diff(expected, got, other_id, node.gateway.id)
        else:  # pragma: no cover
            msg = f"different tests were collected between {other_id} and {node.gateway.id}"
        if not msg:
            return
        self.log(msg)
        rep = pytest.CollectReport(
            nodeid=str(node.gateway.id), outcome="failed", longrepr=msg, result=[]
        )
        self.config.hook.pytest_collectreport(report=rep)
