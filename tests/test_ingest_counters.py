"""Issue #12 items 13 and 14: ingestion keeps its counts in the database (any server process,
or one restarted, may store any batch of a run) and publishes a batch only once committed."""

import pytest
from django.db import transaction
from django.test import TestCase

from runs.execution.environment import Environment, installed
from runs.live.publish import Publisher
from runs.models import ApiToken, Run, Suite, WorkerStat
from tests.base import BaseTestCase
from tests.factories import make_run, test_event


class Ingestion(BaseTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        _, cls.token = ApiToken.create_for(cls.member, "ci")

    def post(self, url, body):
        return self.client.post(
            url, body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {self.token}"
        )

    def start(self):
        response = self.post("/api/ingest/runs", {"suite": "demo", "workers": 2})
        assert response.status_code == 201, response.content
        return response.json()["id"]

    def send(self, run_id, events, first_seq):
        url = f"/api/ingest/runs/{run_id}/events"
        response = self.post(url, {"events": events, "first_seq": first_seq})
        assert response.status_code == 200, response.content


class CountersTests(Ingestion):
    def test_batches_stored_by_different_server_processes_add_up(self):
        run_id = self.start()
        t0 = Run.objects.get(pk=run_id).started_at.timestamp()
        batches = [
            [
                test_event("t.py::a", worker="gw0", start=t0, duration=1.0),
                test_event("t.py::b", "failed", worker="gw1", start=t0, duration=2.0),
            ],
            [
                test_event("t.py::c", worker="gw0", start=t0 + 1, duration=0.5),
                test_event("t.py::d", "crashed", worker="gw1", start=t0 + 2, duration=0.25),
            ],
        ]
        seq = 0
        for batch in batches:
            # Each batch reaches another process (or the same one, restarted): a sink of its own.
            with installed(Environment()):
                self.send(run_id, batch, seq)
            seq += len(batch)
        stats = {s.worker: s for s in WorkerStat.objects.filter(run_id=run_id)}
        assert {w: s.tests for w, s in stats.items()} == {"gw0": 2, "gw1": 2}
        assert stats["gw0"].busy_seconds == pytest.approx(1.5)
        assert stats["gw1"].busy_seconds == pytest.approx(2.25)
        assert (stats["gw0"].first_start, stats["gw0"].last_stop) == (t0, t0 + 1.5)
        assert (stats["gw1"].first_start, stats["gw1"].last_stop) == (t0, t0 + 2.25)
        assert stats["gw1"].crashed == 1
        run = Run.objects.get(pk=run_id)  # the run's counts so far, while it runs
        assert (run.tests_total, run.tests_passed, run.tests_failed) == (4, 2, 2)
        api = self.client.get(f"/api/runs/{run_id}", HTTP_AUTHORIZATION=f"Bearer {self.token}")
        assert {w["id"]: w["tests"] for w in api.json()["per_worker"]} == {"gw0": 2, "gw1": 2}


class Recorder(Publisher):
    """A publisher that a page always watches, and that keeps what it is given."""

    def __init__(self):
        super().__init__()
        self.published = []

    def reachable(self, run_id):
        return True

    def publish(self, run_id, message):
        self.published.append(message)


class PublishAfterCommitTests(Ingestion):
    def setUp(self):
        self.recorder = Recorder()
        self.published = self.recorder.published
        context = installed(Environment(publisher=self.recorder))
        context.__enter__()
        self.addCleanup(context.__exit__, None, None, None)

    def test_a_batch_is_published_only_once_committed(self):
        run_id = self.start()
        with self.captureOnCommitCallbacks(execute=False) as callbacks:
            self.send(run_id, [test_event("t.py::a"), test_event("t.py::b")], 0)
        assert self.published == []  # nothing announced while the transaction was open
        for callback in callbacks:
            callback()
        (message,) = [m for m in self.published if m["type"] == "results"]
        assert [r["nodeid"] for r in message["results"]] == ["t.py::a", "t.py::b"]
        assert message["progress"]["done"] == 2


class RolledBackBatchTests(TestCase):
    def test_a_rolled_back_batch_publishes_nothing(self):
        suite = Suite.objects.create(name="rb", path="/tmp")
        run = Run.objects.create(suite=suite, status="running", config_snapshot={})
        recorder = Recorder()
        published = recorder.published
        env = Environment(publisher=recorder)
        with (
            self.captureOnCommitCallbacks(execute=True),
            pytest.raises(RuntimeError),
            transaction.atomic(),
        ):
            env.sink.handle_events(run.id, [test_event("t.py::a")])
            raise RuntimeError("the outer transaction fails")
        assert published == []
        assert not run.results.exists()


class FinishKeepsWhatArrivedMeanwhileTests(BaseTestCase):
    def test_a_batch_stored_while_a_run_finishes_keeps_its_warning_and_message_count(self):
        """finish_run reads the run, computes its figures, then saves: what a batch stored in
        between (an ingested run's events, another process's live message numbers) stays."""
        from unittest import mock

        from runner.records import RunOutcome
        from runs.execution import sink

        run = make_run(self.suite, status=Run.Status.RUNNING)
        env = Environment()
        real = sink.measured_speedup

        def meanwhile(finishing):
            env.sink.handle_events(run.id, [{"type": "warning", "message": "late news"}])
            Run.objects.filter(pk=run.id).update(live_seq=7)
            return real(finishing)

        with mock.patch.object(sink, "measured_speedup", meanwhile):
            sink.finish_run(run.id, RunOutcome(run.id, 0, 1.0, None, ""))
        run.refresh_from_db()
        assert run.status == Run.Status.PASSED
        assert run.warnings == "late news\n"
        assert run.live_seq == 7


class EventTypeTests(Ingestion):
    def test_a_batch_says_how_many_events_were_of_a_type_this_server_does_not_know(self):
        """Kept out, not refused (a newer client's event must not lose the batch), and not
        counted as accepted: "accepted": 1 for an event stored nowhere misled its sender."""
        run_id = self.start()
        body = {"events": [{"type": "result", "nodeid": "t.py::a"}, test_event("t.py::b")]}
        stored = self.post(f"/api/ingest/runs/{run_id}/events", body).json()
        assert (stored["accepted"], stored["unknown"]) == (1, 1)
        assert list(Run.objects.get(pk=run_id).results.values_list("nodeid", flat=True)) == [
            "t.py::b"
        ]

    def test_warnings_and_events_the_run_could_not_send_are_said_on_the_run(self):
        run_id = self.start()
        warning = {"type": "warning", "message": "ptd warning: xdist lacks _rsyncdirs"}
        self.post(f"/api/ingest/runs/{run_id}/events", {"events": [warning]})
        lost = {"type": "internal_error", "message": "unserialisable event: bad float"}
        self.post(f"/api/ingest/runs/{run_id}/events", {"events": [lost]})
        warnings = Run.objects.get(pk=run_id).warnings
        assert "lacks _rsyncdirs" in warnings and "unserialisable event" in warnings

    def test_a_runs_warnings_are_kept_within_bounds(self):
        """Every viewer gets a run's warnings (page, API, snapshot): a member streaming their
        own run could append megabytes of them."""
        from runs.execution.sink import BATCH_WARNINGS, WARNINGS_MAX

        run_id = self.start()
        batch = [{"type": "warning", "message": f"w{i} " + "x" * 900} for i in range(200)]
        for _ in range(4):
            self.post(f"/api/ingest/runs/{run_id}/events", {"events": batch})
        warnings = Run.objects.get(pk=run_id).warnings
        assert warnings.count("\n") == 2 * BATCH_WARNINGS  # distinct only, then the cap
        assert len(warnings) < WARNINGS_MAX + BATCH_WARNINGS * 1001
