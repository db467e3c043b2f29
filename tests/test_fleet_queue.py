"""The dashboard's side of runs across machines, in-process: the shared queue (collection
check, longest-first leases, a lost shard's units), the launch gate, the Agents page
(tests/test_agents.py runs real agents end to end)."""

from __future__ import annotations

import time

from django.test import override_settings

from runs.execution import environment, fleet, fleet_queue, launch
from runs.execution.pytest_input import LaunchError
from runs.models import Agent, Run, RunUnit, Shard, TestResult
from tests.base import BaseTestCase

IDS = [f"test_a.py::test_{i}" for i in range(6)]
DURATIONS = {IDS[0]: 0.01, IDS[1]: 3.0, IDS[2]: 0.02, IDS[3]: 2.0, IDS[4]: 0.01, IDS[5]: 0.03}


class FleetQueueTests(BaseTestCase):
    def setUp(self):
        self.run = Run.objects.create(
            suite=self.suite,
            status=Run.Status.RUNNING,
            workers=4,
            config_snapshot={"fleet": True, "dist": "load", "machines": 2, "queue": "default"},
        )
        ours = fleet.ptd_version()
        self.shards = [
            Shard.objects.create(
                run=self.run,
                agent=Agent.objects.create(
                    name=f"m{i}", ptd_version=ours, last_heartbeat=time.time()
                ),
                number=i,
                task_id=str(i),
            )
            for i in range(2)
        ]

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
