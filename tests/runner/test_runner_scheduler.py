"""The LPT scheduling core and its xdist adapter, as plain objects."""

from __future__ import annotations

import math
import random
from collections import deque

import pytest
from _ptd_inrun.scheduling.core import (
    LPTScheduler,
    estimate_durations,
    load_durations,
    unit_key,
)
from _ptd_inrun.scheduling.xdist import PTDScheduling


def test_unit_keys():
    assert unit_key("a.py::C::t", "load") == "a.py::C::t"
    assert unit_key("a.py::C::t", "loadscope") == "a.py::C"
    assert unit_key("a.py::t", "loadscope") == "a.py"
    assert unit_key("d/a.py::C::t[1]", "loadfile") == "d/a.py"
    # The group comes from the test's marks, never from its node id.
    assert unit_key("a.py::t", "loadgroup", "db") == "@db"
    assert unit_key("b.py::C::t", "loadgroup", "db") == "@db"
    assert unit_key("a.py::t", "loadgroup") == "a.py::t"
    assert unit_key("a.py::t@db", "loadgroup") == "a.py::t@db"
    with pytest.raises(ValueError):
        unit_key("a.py::t", "each")


def test_unknown_durations_are_the_mean_of_known():
    est = estimate_durations(["a", "b", "c"], {"a": 1.0, "b": 3.0, "gone": 100.0})
    assert est == [1.0, 3.0, 2.0]
    assert estimate_durations(["a", "b"], {}) == [0.1, 0.1]
    assert estimate_durations(["a"], None) == [0.1]


def test_repeat_and_group_suffixes_are_stripped_for_lookup():
    coll = ["a.py::t[1-3]", "a.py::t[2-3]", "a.py::u[x-1-2]", "a.py::v@db"]
    est = estimate_durations(coll, {"a.py::t": 2.0, "a.py::u[x]": 4.0, "a.py::v": 6.0})
    assert est == [2.0, 2.0, 4.0, 6.0]
    # an exact (suffixed) id in the history wins
    assert estimate_durations(["a.py::t[1-2]"], {"a.py::t[1-2]": 9.0, "a.py::t": 1.0}) == [9.0]


def test_units_are_longest_first_and_stable():
    coll = ["a", "b", "c", "d", "e"]
    core = LPTScheduler(coll, {"a": 1.0, "b": 5.0, "c": 3.0, "e": 1.0})  # d -> mean 2.5
    assert [u.key for u in core.units] == ["b", "c", "d", "a", "e"]


def test_grouped_units_sum_their_tests():
    coll = ["m.py::A::t1", "m.py::A::t2", "m.py::t3", "n.py::B::t4"]
    dur = {"m.py::A::t1": 1.0, "m.py::A::t2": 1.0, "m.py::t3": 1.5, "n.py::B::t4": 0.5}
    scope = LPTScheduler(coll, dur, "loadscope")
    assert [(u.key, u.indices, u.seconds) for u in scope.units] == [
        ("m.py::A", [0, 1], 2.0),
        ("m.py", [2], 1.5),
        ("n.py::B", [3], 0.5),
    ]
    files = LPTScheduler(coll, dur, "loadfile")
    assert [(u.key, u.indices) for u in files.units] == [("m.py", [0, 1, 2]), ("n.py", [3])]


def test_a_worker_holding_a_long_test_gets_the_shortest_next():
    coll = [f"s{i}" for i in range(20)] + ["long1", "long2"]
    dur = {f"s{i}": 0.01 * (i + 1) for i in range(20)} | {"long1": 5.0, "long2": 4.0}
    core = LPTScheduler(coll, dur)
    core.add_worker("gw0")
    core.add_worker("gw1")
    first = core.next_for_worker("gw0")
    second = core.next_for_worker("gw1")
    assert [coll[i] for i in first] == ["long1", "s0"]
    assert [coll[i] for i in second] == ["long2", "s1"]
    # gw0 finishes long1: it already holds s0, so it takes the head (longest left) next
    core.mark_complete("gw0", first[0])
    nxt = core.next_for_worker("gw0")
    assert coll[nxt[0]] == "s19"


def test_tiny_tests_travel_in_batches_and_the_tail_shrinks():
    coll = [f"t{i}" for i in range(400)]
    core = LPTScheduler(coll, {c: 0.001 for c in coll})
    for w in ("gw0", "gw1"):
        core.add_worker(w)
    batch = core.next_for_worker("gw0")
    assert 10 <= len(batch) <= 60  # ~min_budget worth of 1 ms tests
    # not refilled while it still has more than half a budget queued
    core.mark_complete("gw0", batch[0])
    assert core.next_for_worker("gw0") == []


def test_every_worker_gets_two_items_when_possible():
    coll = ["a", "b", "c", "d"]
    core = LPTScheduler(coll, {"a": 9.0, "b": 8.0, "c": 7.0, "d": 6.0})
    for w in ("gw0", "gw1"):
        core.add_worker(w)
    assert len(core.next_for_worker("gw0")) == 2
    assert len(core.next_for_worker("gw1")) == 2
    assert not core.has_queued and core.has_pending and not core.finished


def test_removed_worker_items_are_requeued_except_the_crash_item():
    coll = ["a", "b", "c", "d", "e", "f"]
    core = LPTScheduler(coll, {c: 1.0 for c in coll})
    core.add_worker("gw0")
    core.add_worker("gw1")
    sent = core.next_for_worker("gw0")
    assert len(sent) == 2
    unfinished = core.remove_worker("gw0")
    assert unfinished == sent
    # the unstarted one goes back to the front of the queue; the crash item does not
    assert core.queue[0].indices == [sent[1]]
    assert sent[0] not in [i for u in core.queue for i in u.indices]
    core.mark_pending(sent[0])  # e.g. rerunfailures retries the crashed test
    assert core.queue[0].indices == [sent[0]]
    got = core.next_for_worker("gw1")
    assert got[0] == sent[0]
    while core.has_queued:
        core.mark_complete("gw1", got.pop(0))
        got += core.next_for_worker("gw1")
    assert sent[1] in core.completed | set(got)


def test_a_retried_crash_item_rejoins_its_unit_in_grouping_modes():
    coll = ["a.py::t1", "a.py::t2", "a.py::t3", "b.py::t1", "c.py::t1", "d.py::t1"]
    core = LPTScheduler(coll, None, "loadfile")
    core.add_worker("gw0")
    assert core.next_for_worker("gw0") == [0, 1, 2]  # the whole file
    core.mark_complete("gw0", 0)
    assert core.remove_worker("gw0") == [1, 2]  # it died running a.py::t2
    core.mark_pending(1)
    assert core.queue[0].indices == [1, 2] and len(core.queue) == 4
    core.add_worker("gw1")
    assert core.next_for_worker("gw1")[:2] == [1, 2]
    # In "load" mode each test is its own unit: the retry goes first, alone.
    core = LPTScheduler(coll, None, "load")
    core.add_worker("gw0")
    sent = core.next_for_worker("gw0")
    assert core.remove_worker("gw0") == sent
    core.mark_pending(sent[0])
    assert [u.indices for u in list(core.queue)[:2]] == [[sent[0]], sent[1:]]


def test_unassign_takes_back_unstarted_items():
    core = LPTScheduler(["a", "b", "c"], {"a": 3.0, "b": 2.0, "c": 1.0})
    core.add_worker("gw0")
    sent = core.next_for_worker("gw0")
    assert core.unassign("gw0", [sent[-1], 99]) == [sent[-1]]
    assert core.in_flight("gw0") == sent[:-1]
    assert core.queue[0].indices == [sent[-1]]


def simulate(collection, true_seconds, n, mode="load", history=None, groups=None):
    """Discrete-event model of xdist workers (an item runs only once the next is known).

    Returns (makespan, {index: worker}).
    """
    core = LPTScheduler(collection, history, mode, groups=groups)
    workers = [f"gw{i}" for i in range(n)]
    queues = {w: deque() for w in workers}
    down = dict.fromkeys(workers, False)
    busy_until: dict[str, float] = {}
    ran: dict[int, str] = {}
    now = 0.0

    def dispatch(w):
        queues[w].extend(core.next_for_worker(w))
        if not core.has_queued:
            down[w] = True

    for w in workers:
        core.add_worker(w)
    for w in workers:
        dispatch(w)
    while True:
        if core.finished:
            for w in workers:
                down[w] = True
        for w in workers:
            q = queues[w]
            if w not in busy_until and q and (len(q) >= 2 or down[w]):
                busy_until[w] = now + true_seconds[q[0]]
        if not busy_until:
            break
        w = min(busy_until, key=busy_until.get)
        now = busy_until.pop(w)
        index = queues[w].popleft()
        assert index not in ran
        ran[index] = w
        core.mark_complete(w, index)
        dispatch(w)
    return now, ran


def skewed(n_tests=400, long=6, seed=1):
    rng = random.Random(seed)
    short = [min(1.0, rng.lognormvariate(math.log(0.05), 0.8)) for _ in range(n_tests - long)]
    longs = [rng.uniform(2.0, 4.0) for _ in range(long)]
    seconds = short + longs
    coll = [f"tests/test_{i // 40:03d}.py::test_{i:05d}" for i in range(n_tests)]
    return coll, seconds


@pytest.mark.parametrize("n", [2, 4, 8])
def test_simulated_skewed_suite_is_close_to_the_lower_bound(n):
    coll, seconds = skewed()
    history = dict(zip(coll, seconds, strict=True))
    makespan, ran = simulate(coll, seconds, n, history=history)
    assert sorted(ran) == list(range(len(coll)))
    bound = max(sum(seconds) / n, max(seconds))
    assert makespan <= 1.05 * bound


def test_simulated_without_history_still_runs_everything_once():
    coll, seconds = skewed(120, 3)
    makespan, ran = simulate(coll, seconds, 4)
    assert sorted(ran) == list(range(120))
    assert makespan < sum(seconds)


@pytest.mark.parametrize("mode", ["loadscope", "loadfile", "loadgroup"])
def test_simulated_grouped_modes_keep_units_on_one_worker(mode):
    cells = [(m, c, t) for m in range(5) for c in range(3) for t in range(4)]
    coll = [f"m{m}.py::C{c}::t{t}" for m, c, t in cells]
    groups = ["g" if m == 0 and t == 0 else None for m, c, t in cells]
    seconds = [0.01 * (i % 7 + 1) for i in range(len(coll))]
    _, ran = simulate(coll, seconds, 3, mode=mode, groups=groups)
    assert sorted(ran) == list(range(len(coll)))
    units: dict[str, set[str]] = {}
    for i, w in ran.items():
        units.setdefault(unit_key(coll[i], mode, groups[i]), set()).add(w)
    assert all(len(ws) == 1 for ws in units.values())


# -- the xdist adapter with stand-in nodes -------------------------------------------------


class FakeGateway:
    def __init__(self, id_):
        self.id = id_


class FakeNode:
    def __init__(self, id_):
        self.gateway = FakeGateway(id_)
        self.sent: list[int] = []
        self.shutting_down = False

    def send_runtest_some(self, indices):
        self.sent.extend(indices)

    def shutdown(self):
        self.shutting_down = True


class FakeHook:
    def __init__(self):
        self.reports = []

    def pytest_collectreport(self, report):
        self.reports.append(report)


class FakeConfig:
    def __init__(self, n, dist="load"):
        self.n, self.dist = n, dist
        self.hook = FakeHook()

    def getvalue(self, name):
        assert name == "tx"
        return ["popen"] * self.n

    def getoption(self, name, default=None):
        return {"dist": self.dist}.get(name, default)


def test_adapter_protocol_run_and_crash():
    coll = ["t.py::a", "t.py::b", "t.py::c", "t.py::d", "t.py::e"]
    sched = PTDScheduling(FakeConfig(2), mode="load", durations={"t.py::e": 5.0, "t.py::a": 0.1})
    n0, n1 = FakeNode("gw0"), FakeNode("gw1")
    sched.add_node(n0)
    sched.add_node(n1)
    sched.add_node_collection(n0, coll)
    assert not sched.collection_is_completed
    sched.add_node_collection(n1, coll)
    assert sched.collection_is_completed
    sched.schedule()
    assert coll[n0.sent[0]] == "t.py::e"  # longest first
    assert sched.has_pending and not sched.tests_finished
    # gw1 crashes on its first item: it is the crash item, the rest is requeued
    crash = coll[n1.sent[0]]
    assert sched.remove_node(n1) == crash
    sched.mark_test_pending(crash)
    n2 = FakeNode("gw2")  # xdist's replacement worker
    sched.add_node(n2)
    sched.add_node_collection(n2, coll)
    sched.schedule()
    assert coll.index(crash) in n2.sent
    done = dict.fromkeys((n0, n2), 0)
    while any(done[n] < len(n.sent) for n in done):
        for node in done:
            while done[node] < len(node.sent):
                sched.mark_test_complete(node, node.sent[done[node]])
                done[node] += 1
    assert sorted(n0.sent + n2.sent) == list(range(5))
    assert sched.tests_finished and not sched.has_pending
    assert n0.shutting_down and n2.shutting_down
    assert sched.remove_node(n0) is None


def test_adapter_rejects_a_different_collection():
    cfg = FakeConfig(2)
    sched = PTDScheduling(cfg, mode="loadscope")
    n0, n1 = FakeNode("gw0"), FakeNode("gw1")
    sched.add_node(n0)
    sched.add_node(n1)
    sched.add_node_collection(n0, ["a.py::t"])
    sched.add_node_collection(n1, ["a.py::u"])
    sched.schedule()
    assert cfg.hook.reports and not n0.sent and not n1.sent


def test_adapter_empty_collection_shuts_down():
    sched = PTDScheduling(FakeConfig(1))
    n0 = FakeNode("gw0")
    sched.add_node(n0)
    sched.add_node_collection(n0, [])
    sched.schedule()
    assert n0.shutting_down and sched.tests_finished


def test_load_durations(tmp_path):
    good = tmp_path / "d.json"
    good.write_text('{"a": 1.5, "b": "x", "c": -1, "d": 2, "e": true}')
    assert load_durations(str(good)) == {"a": 1.5, "d": 2.0}
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    assert load_durations(str(bad)) == {}
    assert load_durations(str(tmp_path / "missing.json")) == {}
    assert load_durations(None) == {}
    (tmp_path / "list.json").write_text("[1, 2]")
    assert load_durations(str(tmp_path / "list.json")) == {}


def test_adapter_never_feeds_a_replacement_with_another_collection():
    coll = ["t.py::a", "t.py::b", "t.py::c", "t.py::d"]
    cfg = FakeConfig(1)
    sched = PTDScheduling(cfg)
    n0 = FakeNode("gw0")
    sched.add_node(n0)
    sched.add_node_collection(n0, coll)
    sched.schedule()
    assert sched.remove_node(n0) == coll[n0.sent[0]]  # crashed, the rest is requeued
    n1 = FakeNode("gw1")
    sched.add_node(n1)
    sched.add_node_collection(n1, coll[:2])
    sched.schedule()
    assert n1.sent == [] and n1.shutting_down and cfg.hook.reports
