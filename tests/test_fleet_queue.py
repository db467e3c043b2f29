"""The dashboard's side of runs across machines, in-process: the shared queue (collection
check, longest-first leases, a lost shard's units), the launch gate, the Agents page
(tests/test_agents.py runs real agents end to end)."""

from __future__ import annotations

import time

import pytest
from django.db.models import F
from django.test import override_settings

from runs.execution import environment, fleet, fleet_queue, launch
from runs.execution.pytest_input import LaunchError
from runs.models import Agent, Run, RunUnit, Shard, TestResult
from tests.base import BaseTestCase

IDS = [f"test_a.py::test_{i}" for i in range(6)]
DURATIONS = {IDS[0]: 0.01, IDS[1]: 3.0, IDS[2]: 0.02, IDS[3]: 2.0, IDS[4]: 0.01, IDS[5]: 0.03}


def running_over_two_machines(suite):
    """A running run over two machines (agents m0 and m1), its shards not started yet."""
    run = Run.objects.create(
        suite=suite,
        status=Run.Status.RUNNING,
        workers=4,
        config_snapshot={"fleet": True, "dist": "load", "machines": 2, "queue": "default"},
    )
    ours = fleet.ptd_version()
    shards = [
        Shard.objects.create(
            run=run,
            agent=Agent.objects.create(name=f"m{i}", ptd_version=ours, last_heartbeat=time.time()),
            number=i,
            task_id=str(i),
        )
        for i in range(2)
    ]
    return run, shards


class FleetQueueTests(BaseTestCase):
    def setUp(self):
        self.run, self.shards = running_over_two_machines(self.suite)

    def test_the_first_collection_makes_the_queue_others_must_match_it(self):
        first, second = self.shards
        assert fleet_queue.accept_collection(first, IDS, None, DURATIONS) == 6
        assert fleet_queue.accept_collection(second, list(reversed(IDS)), None, {}) == 6
        with self.assertRaises(fleet_queue.CollectionMismatch) as caught:
            fleet_queue.accept_collection(second, [*IDS[:5], "test_a.py::test_new"], None, {})
        message = str(caught.exception)
        assert "machine m1" in message and "test_a.py::test_5" in message

    def test_units_are_leased_longest_first_and_never_twice(self):
        first, second = self.shards
        fleet_queue.accept_collection(first, IDS, None, DURATIONS)
        got = fleet_queue.lease(first, "gw0", 0, 0.0)
        assert got[0].nodeids == [IDS[1]]  # the longest, and (it is long) the shortest next
        assert got[1].seconds == min(DURATIONS.values())
        other = fleet_queue.lease(second, "gw0", 0, 0.0)
        assert other[0].nodeids == [IDS[3]]
        leased = [n for u in RunUnit.objects.filter(state="leased") for n in u.nodeids]
        assert len(leased) == len(set(leased))
        assert fleet_queue.queue_state(first) == "more"
        rest = fleet_queue.lease(first, "gw1", 0, 0.0) + fleet_queue.lease(first, "gw1", 1, 0.01)
        assert RunUnit.objects.filter(state="queued").count() == 0, rest
        assert fleet_queue.queue_state(first) == "wait"  # the other machine holds units

    def test_a_lost_shard_gives_back_what_it_did_not_report(self):
        first, second = self.shards
        fleet_queue.accept_collection(first, IDS, None, DURATIONS)
        held = fleet_queue.lease(first, "gw0", 0, 0.0)
        TestResult.objects.create(
            run=self.run, nodeid=held[1].nodeids[0], worker="m0/gw0", outcome="passed"
        )
        fleet_queue.complete(first, [held[1].id])
        requeued = fleet_queue.lose_shard(first, "machine m0 lost", environment.current().sink)
        assert requeued == 1
        first.refresh_from_db()
        assert first.state == Shard.State.LOST
        crashed = TestResult.objects.get(outcome="crashed")
        assert (crashed.nodeid, crashed.worker) == (IDS[1], "m0/gw0")
        assert "machine m0 lost" in crashed.longrepr
        back = RunUnit.objects.get(state="queued", nodeids=[IDS[1]])
        assert fleet_queue.lease(second, "gw0", 0, 0.0)[0].pk == back.pk

    def test_an_agent_of_another_ptd_version_gets_no_shard_and_the_page_says_why(self):
        Agent.objects.create(name="old", ptd_version="0.0.1", last_heartbeat=time.time())
        names = [a.name for a in fleet.idle_agents("default")]
        assert "old" not in names
        self.login_member()
        page = self.client.get("/agents/")
        self.assertContains(page, "No shards sent: PTD 0.0.1 here")
        self.assertContains(page, "running run #")

    def test_the_agents_the_page_polls_follow_heartbeats_and_shards(self):
        """The Agents page's script renders GET /api/agents: states, ages and new agents."""
        from django.conf import settings

        from runs.models import ApiToken

        self.login_member()
        page = self.client.get("/agents/")
        self.assertContains(page, 'data-source="/api/agents"')
        self.assertContains(page, "js/agents.js")

        def rows():
            return {a["name"]: a for a in self.client.get("/api/agents").json()}

        before = rows()
        assert before["m0"]["state"] == f"running run #{self.run.pk}"
        assert before["m0"]["run"] == self.run.pk and before["m0"]["seconds_ago"] < 5
        assert set(before) == {"m0", "m1"}
        Shard.objects.filter(pk=self.shards[0].pk).update(state=Shard.State.DONE)
        silent = settings.PTD_AGENT_LOST_SECONDS + 10
        Agent.objects.filter(name="m1").update(last_heartbeat=time.time() - silent)
        staff = {"HTTP_AUTHORIZATION": f"Bearer {ApiToken.create_for(self.staff, 'a')[1]}"}
        hello = {"name": "m2", "ptd": "<b>old</b>"}
        said = self.client.post(
            "/api/agents/heartbeat", hello, content_type="application/json", **staff
        )
        assert said.status_code == 200, said.content
        after = rows()
        assert (after["m0"]["state"], after["m0"]["run"]) == ("idle", None)
        assert (after["m1"]["state"], after["m1"]["run"]) == ("lost", None)
        assert after["m1"]["seconds_ago"] >= silent
        assert after["m2"]["state"] == "idle" and after["m2"]["seconds_ago"] < 5
        assert after["m2"]["refused"].startswith("PTD <b>old</b> here")  # text; escaped on the page
        self.assertContains(self.client.get("/agents/"), "PTD &lt;b&gt;old&lt;/b&gt; here")

    def test_a_heartbeat_never_writes_back_a_stale_count_of_runs_served(self):
        """A shard's start counts a run served while the agent's heartbeat is answered: the
        heartbeat must not save the count it read before (a lost update on PostgreSQL)."""
        from unittest import mock

        from runs.models import ApiToken

        stale = Agent.objects.get(name="m0")  # read by the heartbeat...
        Agent.objects.filter(pk=stale.pk).update(runs_served=F("runs_served") + 1)  # ...a start
        staff = {"HTTP_AUTHORIZATION": f"Bearer {ApiToken.create_for(self.staff, 'a')[1]}"}
        with mock.patch.object(Agent.objects, "get_or_create", return_value=(stale, False)):
            said = self.client.post(
                "/api/agents/heartbeat", {"name": "m0", "workers": 3},
                content_type="application/json", **staff,
            )  # fmt: skip
        assert said.status_code == 200, said.content
        agent = Agent.objects.get(name="m0")
        assert (agent.runs_served, agent.workers) == (1, 3)

    @override_settings(PTD_BROKER_URL="")
    def test_a_run_over_machines_needs_a_broker(self):
        with self.assertRaises(LaunchError) as caught:
            launch.launch(self.suite, overrides={"machines": 3})
        assert "needs a broker" in caught.exception.message

    @override_settings(PTD_BROKER_URL="redis://127.0.0.1:6379/0")
    def test_machines_1_without_a_queue_stays_on_this_server(self):
        local = launch.launch(self.suite, overrides={"machines": 1})
        assert not local.config_snapshot.get("fleet")
        spread = launch.launch(self.suite, overrides={"machines": "all", "queue": "linux"})
        snap = spread.config_snapshot
        assert snap["fleet"] and snap["machines"] == 0 and snap["queue"] == "linux"
        assert snap["engine"] == "fork" and spread.workers == 0

    def test_a_shard_key_opens_its_own_queue_and_nothing_else(self):
        from runs.models import ApiToken

        staff = {"HTTP_AUTHORIZATION": f"Bearer {ApiToken.create_for(self.staff, 'a')[1]}"}
        first, second = self.shards
        answer = self.client.post(
            f"/api/shards/{first.pk}/start", {}, content_type="application/json", **staff
        ).json()
        assert answer["go"] and answer["key"].startswith("ptdshard_")
        key = {"HTTP_AUTHORIZATION": f"Bearer {answer['key']}"}
        body = {"nodeids": IDS}
        ok = self.client.post(
            f"/api/shards/{first.pk}/collection", body, content_type="application/json", **key
        )
        assert ok.status_code == 200, ok.json()
        other = self.client.post(
            f"/api/shards/{second.pk}/units", {}, content_type="application/json", **key
        )
        assert other.status_code == 403
        events = self.client.post(
            f"/api/shards/{first.pk}/events",
            {"first_seq": 0, "events": []},
            content_type="application/json",
            **key,
        )
        assert events.status_code == 401  # results come from the agent, with its token

    def test_the_run_page_lists_its_machines_and_their_state(self):
        Shard.objects.filter(pk=self.shards[1].pk).update(state=Shard.State.LOST)
        self.login_member()
        page = self.client.get(f"/runs/{self.run.pk}/")
        self.assertContains(page, 'id="machines"')
        self.assertContains(page, '<tr data-agent="m1">')
        self.assertContains(page, "status-lost")
        self.assertContains(page, "over 2 machines (queue default)")


MANY = [f"test_b.py::test_{i}" for i in range(40)]
MANY_DURATIONS = {n: 0.05 + 0.01 * (i % 7) for i, n in enumerate(MANY)} | {MANY[7]: 2.5}


class LeaseManyTests(BaseTestCase):
    """One request leases for every worker of a shard that needs units (fork.remote asks so)."""

    def setUp(self):
        from runs.models import ApiToken

        self.run, self.shards = running_over_two_machines(self.suite)
        staff = {"HTTP_AUTHORIZATION": f"Bearer {ApiToken.create_for(self.staff, 'a')[1]}"}
        self.keys = []
        for shard in self.shards:
            path = f"/api/shards/{shard.pk}/start"
            go = self.client.post(path, {}, content_type="application/json", **staff).json()
            self.keys.append({"HTTP_AUTHORIZATION": f"Bearer {go['key']}"})
        fleet_queue.accept_collection(self.shards[0], MANY, None, MANY_DURATIONS)
        Shard.objects.filter(pk__in=[s.pk for s in self.shards]).update(state="running")

    def units(self, number: int, body: dict) -> dict:
        shard = self.shards[number]
        answer = self.client.post(
            f"/api/shards/{shard.pk}/units", body, content_type="application/json",
            **self.keys[number],
        )  # fmt: skip
        assert answer.status_code == 200, answer.content
        return answer.json()

    def test_one_request_serves_every_worker_asked_for_longest_first(self):
        asks = [{"worker": f"gw{i}", "held": 0} for i in range(4)]
        answer = self.units(0, {"asks": asks})
        leases = answer["leases"]
        assert sorted(leases) == ["gw0", "gw1", "gw2", "gw3"] and answer["units"] == []
        assert answer["state"] == "more" and 0.2 <= answer["budget"] <= 0.5
        firsts = [leases[f"gw{i}"][0]["seconds"] for i in range(4)]
        assert firsts[0] == 2.5 and firsts[1:] == sorted(firsts[1:], reverse=True)
        assert len(leases["gw0"]) == 2  # a long item: the shortest next, nothing more
        assert leases["gw0"][1]["seconds"] == min(MANY_DURATIONS.values())
        for worker in ("gw1", "gw2", "gw3"):  # a next one, then what fits the budget
            units = leases[worker]
            assert len(units) >= 2
            assert sum(u["seconds"] for u in units[1:]) <= answer["budget"] + 1e-9
        ids = [u["id"] for units in leases.values() for u in units]
        assert len(ids) == len(set(ids))
        leased = RunUnit.objects.filter(state="leased")
        assert sorted(leased.values_list("pk", flat=True)) == sorted(ids)
        for worker, units in leases.items():
            assert {u.worker for u in leased.filter(pk__in=[u["id"] for u in units])} == {worker}

    def test_a_worker_named_twice_in_one_request_is_refused_and_nothing_leased(self):
        """One answer per worker: a second ask's units would be leased and never sent."""
        shard = self.shards[0]
        for body in (
            {"asks": [{"worker": "gw0", "held": 0}, {"worker": "gw0", "held": 0}]},
            {"asks": [{"worker": "gw1", "held": 0}], "worker": "gw1"},
        ):
            answer = self.client.post(
                f"/api/shards/{shard.pk}/units", body, content_type="application/json",
                **self.keys[0],
            )  # fmt: skip
            assert answer.status_code == 400 and "each worker once" in answer.json()["detail"]
        assert not RunUnit.objects.filter(state="leased").exists()

    def test_a_worker_asked_for_ahead_gets_what_fits_behind_its_items(self):
        self.units(0, {"asks": [{"worker": "gw3", "held": 0}]})  # the long test: nothing fits
        answer = self.units(0, {"asks": [{"worker": "gw0", "held": 2, "held_seconds": 0.05,
                                           "behind": 0.05}]})  # fmt: skip
        got = answer["leases"]["gw0"]
        assert got and 0.05 + sum(u["seconds"] for u in got) <= answer["budget"] + 1e-9
        full = {"worker": "gw1", "held": 3, "held_seconds": 0.05, "behind": answer["budget"]}
        assert self.units(0, {"asks": [full]})["leases"]["gw1"] == []
        long = {"worker": "gw2", "held": 2, "held_seconds": 3.0, "behind": 0.0}
        assert self.units(0, {"asks": [long]})["leases"]["gw2"] == []

    def test_a_worker_down_to_two_items_gets_a_third_however_long_its_second(self):
        """It starts its next item only once it knows the one after: without a third, it would
        wait a round trip after its running item, every item (bench_agents' gaps)."""
        self.units(0, {"asks": [{"worker": "gw3", "held": 0}]})  # the long test
        limit = fleet_queue.budget(self.run)
        two = {"worker": "gw0", "held": 2, "held_seconds": 0.05, "behind": limit}
        assert len(self.units(0, {"asks": [two]})["leases"]["gw0"]) == 1
        three = {**two, "worker": "gw1", "held": 3}
        assert self.units(0, {"asks": [three]})["leases"]["gw1"] == []
        # Its second item long: the third waits behind it, so it is the shortest there is.
        shortest = min(RunUnit.objects.filter(state="queued").values_list("seconds", flat=True))
        behind_long = {**two, "worker": "gw2", "behind": limit + 1.0}
        got = self.units(0, {"asks": [behind_long]})["leases"]["gw2"]
        assert [u["seconds"] for u in got] == [shortest]

    def test_a_lost_answer_is_sent_again_and_nothing_more_is_leased(self):
        asks = [{"worker": f"gw{i}", "held": 0} for i in range(3)]
        first = self.units(0, {"asks": asks})
        again = self.units(0, {"asks": asks, "holding": []})  # the first answer never came
        assert again["leases"] == first["leases"]
        leased = RunUnit.objects.filter(state="leased").count()
        assert leased == sum(len(u) for u in first["leases"].values())

    def test_what_a_worker_holds_outlasts_the_next_answer(self):
        self.units(0, {"asks": [{"worker": "gw3", "held": 0}]})  # the long test
        plain = fleet_queue.budget(self.run)
        assert fleet_queue.budget(self.run, latency=0.01) == plain
        slow = fleet_queue.budget(self.run, latency=0.05)
        assert slow == pytest.approx(fleet_queue.AHEAD_FACTOR * 0.05) and slow > plain
        assert fleet_queue.budget(self.run, latency=30.0) == fleet_queue.AHEAD_CAP
        ask = {"worker": "gw0", "held": 2, "held_seconds": 0.05, "behind": 0.05}
        answer = self.units(0, {"asks": [ask], "latency": 0.05})
        assert answer["budget"] == slow
        held = 0.05 + sum(u["seconds"] for u in answer["leases"]["gw0"])
        assert plain < held <= slow + 1e-9

    def test_the_tail_caps_what_a_worker_holds_ahead(self):
        RunUnit.objects.filter(run=self.run).exclude(pk__in=RunUnit.objects.filter(
            run=self.run).order_by("seconds")[:4].values("pk")).update(state="done")  # fmt: skip
        left = sum(RunUnit.objects.filter(state="queued").values_list("seconds", flat=True))
        ahead = fleet_queue.budget(self.run, latency=30.0)
        assert ahead == max(fleet_queue.MIN_BUDGET, fleet_queue.AHEAD_SHARE * left / 4)

    def test_one_request_for_several_workers_takes_no_more_than_as_many_requests(self):
        """The tail cap (AHEAD_SHARE x a worker's share of what is queued) counts what the
        same request planned for the workers before: asking for four at once must not let
        each take twice its share of the whole queue."""
        RunUnit.objects.filter(run=self.run, seconds__gt=1).update(state="done")  # the long one
        queued = sum(RunUnit.objects.filter(state="queued").values_list("seconds", flat=True))
        asks = [{"worker": f"gw{i}", "held": 2, "held_seconds": 0.05} for i in range(4)]
        together = self.units(0, {"asks": asks, "latency": 30.0})["leases"]
        RunUnit.objects.filter(run=self.run, state="leased").update(state="queued", worker="")
        apart = {}
        for ask in asks:
            answer = self.units(0, {"asks": [ask], "latency": 30.0, "holding": []})
            apart.update(answer["leases"])
        ids = {w: [u["id"] for u in units] for w, units in together.items()}
        assert ids == {w: [u["id"] for u in units] for w, units in apart.items()}
        planned = 0.0
        for i in range(4):
            took = sum(u["seconds"] for u in together[f"gw{i}"])
            assert took <= fleet_queue._budget(queued - planned, 4, 30.0) + 1e-9
            planned += took

    def test_the_one_worker_body_still_works(self):
        answer = self.units(1, {"worker": "gw0", "held": 0, "held_seconds": 0.0})
        assert answer["units"][0]["seconds"] == 2.5 and answer["leases"] == {}

    def test_a_unit_claimed_meanwhile_by_another_shard_is_never_leased_twice(self):
        """Under concurrent transactions (PostgreSQL) another shard may claim a unit between
        this request's read and its update: the update is conditional, the worker gets what
        it claimed (a worker down to its last item, another unit)."""
        from unittest import mock

        real = fleet_queue._plan
        stolen: list[int] = []

        def plan(queue, ask, limit):
            units = real(queue, ask, limit)
            if units and not stolen:
                stolen.append(units[0].id)
                RunUnit.objects.filter(pk=units[0].id).update(
                    state="leased", shard=self.shards[1], worker="gw9"
                )
            return units

        asks = [fleet_queue.Ask("gw0", 0), fleet_queue.Ask("gw1", 3, 0.05, 0.5)]
        with mock.patch.object(fleet_queue, "_plan", plan):
            got = fleet_queue.lease_many(self.shards[0], asks)
        assert stolen and got["gw0"] and stolen[0] not in [u.id for u in got["gw0"]]
        assert got["gw1"] == []
        mine = RunUnit.objects.filter(shard=self.shards[0], state="leased")
        assert sorted(mine.values_list("pk", flat=True)) == sorted(u.id for u in got["gw0"])
        assert RunUnit.objects.get(pk=stolen[0]).shard_id == self.shards[1].pk
