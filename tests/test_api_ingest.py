"""The ingestion endpoints: auth (none / bad / member / staff), validation, happy path."""

import json
import threading
import time

from django.conf import settings
from django.contrib.auth.models import User
from django.test import TransactionTestCase, override_settings

from runs.execution.environment import Environment, installed
from runs.models import ApiToken, Run, Suite, TestResult, TestStat
from tests.base import BaseTestCase
from tests.factories import test_event


class IngestTestCase(BaseTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        _, cls.member_token = ApiToken.create_for(cls.member, "ci")
        _, cls.staff_token = ApiToken.create_for(cls.staff, "admin")

    def call(self, url, data=None, token=None):
        headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
        return self.client.post(url, data or {}, content_type="application/json", **headers)

    def start_run(self, token=None, **body):
        response = self.call(
            "/api/ingest/runs", {"suite": "demo", **body}, token or self.member_token
        )
        assert response.status_code == 201, response.content
        return response.json()["id"]


class IngestAuthTests(IngestTestCase):
    def test_no_or_bad_token_is_401(self):
        for token in (None, "ptd_wrong", "not-even-ptd"):
            with self.subTest(token=token):
                response = self.call("/api/ingest/runs", {"suite": "demo"}, token)
                assert response.status_code == 401
                assert "detail" in response.json()
        assert not Run.objects.exists()

    def test_member_may_ingest_but_not_into_someone_elses_run(self):
        staff_run = self.start_run(self.staff_token)
        events = {"events": [test_event("t.py::a")]}
        response = self.call(f"/api/ingest/runs/{staff_run}/events", events, self.member_token)
        assert response.status_code == 403
        response = self.call(f"/api/ingest/runs/{staff_run}/finish", {}, self.member_token)
        assert response.status_code in (403, 422)

    def test_staff_may_write_to_any_external_run(self):
        run_id = self.start_run(self.member_token)
        events = {"events": [test_event("t.py::a")]}
        response = self.call(f"/api/ingest/runs/{run_id}/events", events, self.staff_token)
        assert response.status_code == 200


class IngestFlowTests(IngestTestCase):
    def test_a_run_end_to_end(self):
        run_id = self.start_run(workers=2, commit="abc123", branch="main", args=["-n", "2"])
        run = Run.objects.get(pk=run_id)
        t0 = time.time()
        assert run.trigger == "external" and run.status == "running" and run.user == self.member
        assert run.commit == "abc123" and run.config_snapshot["extra_args"] == ["-n", "2"]
        batch = [
            {"type": "session_start", "workers": 2, "pid": 1},
            {"type": "worker_up", "worker": "gw0"},
            {"type": "worker_up", "worker": "gw1"},
            {"type": "collected", "count": 3},
            test_event("t.py::a", worker="gw0", start=t0, duration=1.0),
            test_event("t.py::b", "failed", worker="gw1", start=t0, duration=2.0),
        ]
        response = self.call(
            f"/api/ingest/runs/{run_id}/events", {"events": batch}, self.member_token
        )
        assert response.status_code == 200, response.content
        assert response.json()["accepted"] == 6
        more = [test_event("t.py::c", worker="gw0", start=t0 + 1, duration=1.0, time=1.0)]
        self.call(f"/api/ingest/runs/{run_id}/events", {"events": more}, self.member_token)
        live = self.client.get(
            f"/api/runs/{run_id}", HTTP_AUTHORIZATION=f"Bearer {self.member_token}"
        )
        assert live.json()["collected"] == 3
        assert {w["id"]: w["tests"] for w in live.json()["per_worker"]} == {"gw0": 2, "gw1": 1}
        finish = self.call(
            f"/api/ingest/runs/{run_id}/finish",
            {"exitstatus": 1, "wall_seconds": 2.5},
            self.member_token,
        )
        assert finish.status_code == 200, finish.content
        assert finish.json() == {"id": run_id, "status": "failed", "url": f"/runs/{run_id}/"}
        run.refresh_from_db()
        assert run.tests_total == 3 and run.tests_failed == 1 and run.workers == 2
        assert run.wall_seconds == 2.5 and abs(run.speedup - 4.0 / 2.5) < 1e-3
        assert run.finished_at is not None and run.exit_code == 1
        # Closed: nothing more is accepted.
        again = self.call(f"/api/ingest/runs/{run_id}/events", {"events": more}, self.member_token)
        assert again.status_code == 409
        refinish = self.call(
            f"/api/ingest/runs/{run_id}/finish",
            {"exitstatus": 0, "wall_seconds": 1},
            self.member_token,
        )
        assert refinish.status_code == 409

    def test_numbered_batches_sent_again_are_stored_once(self):
        run_id = self.start_run()
        url = f"/api/ingest/runs/{run_id}/events"
        batch = [test_event(f"t.py::t{i}") for i in range(3)]
        first = self.call(url, {"events": batch, "first_seq": 0}, self.member_token)
        assert first.json()["accepted"] == 3 and first.json()["duplicates"] == 0
        # The same batch again (its answer was lost), then one overlapping it by one event.
        again = self.call(url, {"events": batch, "first_seq": 0}, self.member_token)
        assert (again.json()["accepted"], again.json()["duplicates"]) == (0, 3)
        overlap = batch[2:] + [test_event("t.py::t3"), test_event("t.py::t4")]
        more = self.call(url, {"events": overlap, "first_seq": 2}, self.member_token)
        assert (more.json()["accepted"], more.json()["duplicates"]) == (2, 1)
        run = Run.objects.get(pk=run_id)
        assert run.events_received == 5
        nodeids = sorted(run.results.values_list("nodeid", flat=True))
        assert nodeids == [f"t.py::t{i}" for i in range(5)]
        # Unnumbered batches (an older plugin) are stored as they come.
        plain = self.call(url, {"events": [test_event("t.py::t5")]}, self.member_token)
        assert plain.json()["accepted"] == 1 and run.results.count() == 6
        bad = self.call(url, {"events": batch, "first_seq": -1}, self.member_token)
        assert bad.status_code in (400, 422) and "first_seq" in bad.content.decode()

    def test_passed_run_and_suite_path_need_not_exist_here(self):
        Suite.objects.create(name="remote", path="/on/the/ci/machine/only")
        run_id = self.start_run(suite="remote")
        self.call(
            f"/api/ingest/runs/{run_id}/events",
            {"events": [test_event("t.py::a")]},
            self.member_token,
        )
        finish = self.call(
            f"/api/ingest/runs/{run_id}/finish",
            {"exitstatus": 0, "wall_seconds": 1},
            self.member_token,
        )
        assert finish.json()["status"] == "passed"

    def test_suite_by_id_and_unknown_suite_404(self):
        assert self.start_run(suite=self.suite.id)
        response = self.call("/api/ingest/runs", {"suite": "nope"}, self.member_token)
        assert response.status_code == 404 and "nope" in response.json()["detail"]
        response = self.call("/api/ingest/runs", {"suite": "²"}, self.member_token)
        assert response.status_code == 404

    def test_only_external_running_runs_take_events(self):
        other = Run.objects.create(suite=self.suite, config_snapshot={}, status="running")
        events = {"events": [test_event("t.py::a")]}
        response = self.call(f"/api/ingest/runs/{other.id}/events", events, self.staff_token)
        assert response.status_code == 409
        assert (
            self.call("/api/ingest/runs/99999/events", events, self.staff_token).status_code == 404
        )


class IngestValidationTests(IngestTestCase):
    def setUp(self):
        self.run_id = self.start_run()
        self.url = f"/api/ingest/runs/{self.run_id}/events"

    def assert_rejected(self, events, field):
        response = self.call(self.url, {"events": events}, self.member_token)
        assert 400 <= response.status_code < 500, response.content
        assert field in str(response.json()["detail"]), response.content

    def test_bad_events_name_the_field(self):
        self.assert_rejected([test_event("t.py::a", outcome="exploded")], "outcome")
        self.assert_rejected([test_event("t.py::a", duration=-1)], "duration")
        self.assert_rejected([test_event("t.py::a", worker="")], "worker")
        self.assert_rejected([test_event("t.py::a", attempt="x")], "attempt")
        self.assert_rejected([{"type": "test", "outcome": "passed"}], "events[0].nodeid")
        self.assert_rejected([{"type": "worker_up"}], "events[0].worker")
        self.assert_rejected([{"nodeid": "x"}], "type")
        self.assert_rejected("not a list", "events")
        assert not Run.objects.get(pk=self.run_id).results.exists()

    def test_bad_run_and_finish_bodies(self):
        for body, field in [
            ({"suite": "demo", "workers": 0}, "workers"),
            ({"suite": "demo", "commit": "x" * 65}, "commit"),
            ({}, "suite"),
        ]:
            response = self.call("/api/ingest/runs", body, self.member_token)
            assert response.status_code == 422 and field in str(response.json()["detail"])
        url = f"/api/ingest/runs/{self.run_id}/finish"
        response = self.call(url, {"exitstatus": 0, "wall_seconds": -3}, self.member_token)
        assert response.status_code == 422 and "wall_seconds" in str(response.json()["detail"])
        response = self.call(url, {"wall_seconds": 3}, self.member_token)
        assert response.status_code == 422 and "exitstatus" in str(response.json()["detail"])

    def test_not_json_is_400(self):
        response = self.client.post(
            self.url,
            "{nope",
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {self.member_token}",
        )
        assert response.status_code == 400


class IngestSchemaTests(IngestTestCase):
    """Issue #12 item 11: garbage is refused at the schema, with a 4xx JSON naming the field."""

    def setUp(self):
        self.run_id = self.start_run()
        self.url = f"/api/ingest/runs/{self.run_id}/events"

    def post_events(self, events, **body):
        return self.call(self.url, {"events": events, **body}, self.member_token)

    def assert_refused(self, response, field, status=(400, 422)):
        assert response.status_code in status, response.content
        assert field in str(response.json()["detail"]), response.content

    def test_types_are_strict(self):
        response = self.call("/api/ingest/runs", {"suite": True}, self.member_token)
        self.assert_refused(response, "suite")  # not filed under the suite with id 1
        response = self.call(
            "/api/ingest/runs", {"suite": "demo", "workers": "2"}, self.member_token
        )
        self.assert_refused(response, "workers")
        self.assert_refused(self.post_events([test_event("t.py::a", attempt=True)]), "attempt")
        self.assert_refused(self.post_events([{**test_event("t.py::a"), "start": "1"}]), "start")
        assert Run.objects.count() == 1

    def test_no_nul_characters(self):
        for event in (
            test_event("t.py::a\x00b"),
            test_event("t.py::a", worker="gw\x000"),
            test_event("t.py::a", "failed", longrepr="E \x00"),
        ):
            self.assert_refused(self.post_events([event]), "NUL")
        response = self.call(
            "/api/ingest/runs", {"suite": "demo", "args": ["-k", "a\x00"]}, self.member_token
        )
        self.assert_refused(response, "NUL")
        finish = self.call(
            f"/api/ingest/runs/{self.run_id}/finish",
            {"exitstatus": 0, "wall_seconds": 1, "message": "\x00"},
            self.member_token,
        )
        self.assert_refused(finish, "NUL")
        assert not TestResult.objects.exists()

    def test_times_inside_the_runs_window_and_stop_after_start(self):
        now = time.time()
        for event, field in (
            (test_event("t.py::a", start=1000.0), "events[0].start"),  # 1970
            (test_event("t.py::a", start=now + 86400 * 365 * 100), "events[0].start"),
            (test_event("t.py::a", start=now, stop=now - 5), "events[0].stop"),
            (test_event("t.py::a", start=now - 7200), "events[0].start"),  # before the run
        ):
            self.assert_refused(self.post_events([event]), field, status=(400,))
        assert not TestResult.objects.exists()
        # A run made from a spool hours later says when its session started.
        then = now - 7200
        old = self.start_run(started=then)
        response = self.call(
            f"/api/ingest/runs/{old}/events",
            {"events": [test_event("t.py::a", start=then + 1)]},
            self.member_token,
        )
        assert response.status_code == 200, response.content
        too_old = self.call(
            "/api/ingest/runs", {"suite": "demo", "started": 1000.0}, self.member_token
        )
        self.assert_refused(too_old, "started", status=(400,))

    def test_sequence_numbers_are_contiguous(self):
        far = self.post_events([test_event("t.py::a")], first_seq=2**62)
        self.assert_refused(far, "first_seq", status=(409,))
        gap = self.post_events([test_event("t.py::a")], first_seq=1)
        self.assert_refused(gap, "first_seq", status=(409,))
        # Nothing was stored nor counted: the next batches go on from 0.
        first = self.post_events([test_event("t.py::a")], first_seq=0)
        second = self.post_events([test_event("t.py::b")], first_seq=1)
        assert first.json()["accepted"] == second.json()["accepted"] == 1
        assert Run.objects.get(pk=self.run_id).events_received == 2

    def test_a_body_over_the_limit_is_a_json_413(self):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        events = [test_event(f"t.py::t{i}", "failed", longrepr="x" * 4000) for i in range(800)]
        body = json.dumps({"events": events})
        assert len(body) > limit
        response = self.client.post(
            self.url,
            body,
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {self.member_token}",
        )
        assert response.status_code == 413
        assert response["Content-Type"].startswith("application/json")
        assert str(limit) in response.json()["detail"]


class BackgroundHistoryTests(TransactionTestCase):
    """In the server, /finish answers before the run is folded into the flakiness summary."""

    def test_finish_answers_then_the_history_thread_folds_the_run(self):
        user = User.objects.create_user("ci", password="x")
        Suite.objects.create(name="demo", path="/tmp")
        _, token = ApiToken.create_for(user, "ci")
        headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"}

        def post(url, data):
            return self.client.post(url, data, content_type="application/json", **headers)

        run_id = post("/api/ingest/runs", {"suite": "demo"}).json()["id"]
        events = [test_event("t.py::a"), test_event("t.py::b", outcome="failed")]
        assert post(f"/api/ingest/runs/{run_id}/events", {"events": events}).status_code == 200
        gate = threading.Event()
        env = Environment()
        env.history.submit(gate.wait, 30)  # hold the history thread
        with override_settings(PTD_BACKGROUND_HISTORY=True), installed(env):
            finish = post(f"/api/ingest/runs/{run_id}/finish", {"exitstatus": 1, "wall_seconds": 1})
            assert finish.status_code == 200 and finish.json()["status"] == "failed"
            assert not TestStat.objects.exists()  # answered without waiting for the summary
            gate.set()
            env.history.wait(timeout=30)
        stats = {s.nodeid: s for s in TestStat.objects.filter(suite__name="demo")}
        assert set(stats) == {"t.py::a", "t.py::b"}
        assert stats["t.py::b"].runs_failed == 1 and stats["t.py::a"].runs_seen == 1


class FinishOnceTests(TransactionTestCase):
    """A run is finished once: by one of two /finish calls at once, or by /finish or the
    silent-run sweeper, whichever claims it first; the other changes nothing."""

    def setUp(self):
        self.user = User.objects.create_user("ci", password="x")
        Suite.objects.create(name="demo", path="/tmp")
        _, token = ApiToken.create_for(self.user, "ci")
        self.headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"}

    def post(self, url, data, client=None):
        client = client or self.client
        return client.post(url, data, content_type="application/json", **self.headers)

    def start(self):
        run_id = self.post("/api/ingest/runs", {"suite": "demo"}).json()["id"]
        events = [test_event("t.py::a"), test_event("t.py::b", outcome="failed")]
        assert self.post(f"/api/ingest/runs/{run_id}/events", {"events": events}).status_code == 200
        return run_id

    def test_a_run_the_sweeper_closed_is_not_finished_again(self):
        from runs.execution.sink import close_interrupted

        run_id = self.start()
        with installed(Environment()) as env:
            assert close_interrupted(run_id, "silent", history=env.history)
            env.history.wait(timeout=30)
            assert env.finish_external(run_id, 0, 1.0, "") is None
        run = Run.objects.get(pk=run_id)
        assert run.status == Run.Status.INTERRUPTED and run.message == "silent"
        assert not TestStat.objects.exists()  # an unfinished run is not in the flakiness history

    def test_a_claimed_run_is_not_swept(self):
        from runs.execution.sink import close_interrupted

        run_id = self.start()
        # What /finish's claim leaves while it computes the figures: still running, finished_at set.
        Run.objects.filter(pk=run_id).update(finished_at=Run.objects.get(pk=run_id).created_at)
        assert not close_interrupted(run_id, "silent")
        assert Run.objects.get(pk=run_id).status == Run.Status.RUNNING

    def test_two_finish_calls_at_once_finish_it_once(self):
        from django.test import Client

        run_id = self.start()
        barrier = threading.Barrier(4)
        answers = []

        def finish():
            client = Client()
            barrier.wait(timeout=30)
            body = {"exitstatus": 1, "wall_seconds": 1}
            answers.append(self.post(f"/api/ingest/runs/{run_id}/finish", body, client))

        with installed(Environment()) as env:
            threads = [threading.Thread(target=finish) for _ in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=60)
            env.history.wait(timeout=30)
        codes = sorted(answer.status_code for answer in answers)
        assert codes == [200, 409, 409, 409], [a.content for a in answers]
        assert TestStat.objects.get(nodeid="t.py::b").runs_seen == 1
