"""Findings of the hostile-member review (M1, M3, L7, L8, L9; L10 is in test_consumers.py),
through the real entrances: the API with a member's token, the rerun form as a member."""

from django.contrib.messages import get_messages

from runs.execution import launch
from runs.models import ApiToken, Run, TestResult
from tests.base import BaseTestCase
from tests.factories import make_run, test_event

SCRIPT = "tools/maintenance.py"  # a .py file of the suite's directory that is not a test
DISGUISED = [
    "tests/test_a.py::test_\u202eok",  # right-to-left override: shows another name
    "tests/test_a.py::test_x\u0085y",  # next line (a C1 control)
    "tests/test_a.py::test_x\u2028y",  # line separator
    "tests/test_a.py::test_x\u200by",  # zero-width space (format)
]


class MemberTestCase(BaseTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        _, cls.token = ApiToken.create_for(cls.member, "ci")

    def call(self, url, data):
        return self.client.post(
            url, data, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {self.token}"
        )

    def start(self, **body) -> int:
        response = self.call("/api/ingest/runs", {"suite": "demo", **body})
        assert response.status_code == 201, response.content
        return response.json()["id"]

    def send(self, run_id, *events):
        return self.call(f"/api/ingest/runs/{run_id}/events", {"events": list(events)})

    def finish(self, run_id, wall_seconds=1.0):
        return self.call(
            f"/api/ingest/runs/{run_id}/finish", {"exitstatus": 0, "wall_seconds": wall_seconds}
        )

    def rerun(self, nodeid, run_id=""):
        self.login_member()
        response = self.client.post(
            "/suites/demo/rerun/", {"nodeid": nodeid, "times": "1", "run": run_id}
        )
        return response, [str(m) for m in get_messages(response.wsgi_request)]

    def assert_refused(self, response, *fields):
        assert response.status_code in (400, 422), response.content
        detail = str(response.json()["detail"])
        assert all(field in detail for field in fields), detail


class RerunOnlyServerTestsTests(MemberTestCase):
    """M1: a rerun runs a test the server itself ran, inside a Python file."""

    def test_an_ingested_script_path_is_not_rerun(self):
        for nodeid in (SCRIPT, f"{SCRIPT}::main"):
            with self.subTest(nodeid=nodeid):
                run_id = self.start()
                assert self.send(run_id, test_event(nodeid)).status_code == 200
                assert self.finish(run_id).status_code == 200
                before = Run.objects.count()
                response, messages = self.rerun(nodeid, run_id)
                assert response.status_code == 302
                assert messages and "Rerunning" not in messages[-1], messages
                assert Run.objects.count() == before  # nothing launched

    def test_its_history_page_offers_no_rerun(self):
        nodeid = f"{SCRIPT}::main"
        run_id = self.start()
        assert self.send(run_id, test_event(nodeid, "failed")).status_code == 200
        assert self.finish(run_id).status_code == 200
        self.login_member()
        page = self.client.get(f"/suites/demo/tests/{nodeid}")
        assert page.status_code == 200
        self.assertNotContains(page, 'id="rerun-form"')
        make_run(self.suite, results=[(nodeid, "gw0", "failed", 0.1)])  # the server ran it
        self.assertContains(self.client.get(f"/suites/demo/tests/{nodeid}"), 'id="rerun-form"')

    def test_a_path_without_a_test_is_not_rerun_even_from_a_server_run(self):
        source = make_run(
            self.suite,
            results=[
                ("tests/test_demo.py", "gw0", "error", 0.1),  # a module's collection error
                ("docs/notes.txt::notes.txt", "gw0", "failed", 0.1),  # a text doctest
            ],
        )
        for nodeid in ("tests/test_demo.py", "docs/notes.txt::notes.txt"):
            with self.subTest(nodeid=nodeid):
                response, messages = self.rerun(nodeid, source.id)
                assert response.status_code == 302
                assert any("Python file" in m for m in messages), messages
        assert Run.objects.count() == 1

    def test_a_test_the_server_ran_is_rerun(self):
        nodeid = "tests/test_demo.py::test_one"
        source = make_run(self.suite, results=[(f"{nodeid}[1-2]", "gw0", "failed", 0.1)])
        response, messages = self.rerun(nodeid, source.id)
        rerun = Run.objects.exclude(pk=source.pk).get()
        assert rerun.config_snapshot["extra_args"][-1] == nodeid, messages


class UnencodableTextTests(MemberTestCase):
    """M3 and L8: every API text field refuses what the database cannot store."""

    def test_ingestion_refuses_lone_surrogates(self):
        response = self.call("/api/ingest/runs", {"suite": "demo", "branch": "x\ud800"})
        self.assert_refused(response, "branch")
        run_id = self.start()
        event = test_event("tests/test_a.py::t", "failed", longrepr="E  \ud800")
        self.assert_refused(self.send(run_id, event), "longrepr")
        response = self.call(
            f"/api/ingest/runs/{run_id}/finish",
            {"exitstatus": 1, "wall_seconds": 1.0, "message": "\udfff"},
        )
        self.assert_refused(response, "message")
        assert not TestResult.objects.exists()

    def test_launching_is_strict_and_refuses_what_cannot_be_stored(self):
        for body, field in (
            ({"suite": True}, "suite"),
            ({"suite": "demo", "workers": True}, "workers"),
            ({"suite": "demo", "branch": "a\u0000b"}, "branch"),
            ({"suite": "demo", "branch": "a\ud800"}, "branch"),
            ({"suite": "demo", "commit": "\udc00"}, "commit"),
            ({"suite": "demo", "keyword": "x\ud800"}, "keyword"),
        ):
            with self.subTest(body=body):
                self.assert_refused(self.call("/api/runs", body), field)
        assert not Run.objects.exists()
        listed = self.client.get(
            "/api/runs", {"branch": "a\x00b"}, HTTP_AUTHORIZATION=f"Bearer {self.token}"
        )
        self.assert_refused(listed, "branch")


class IngestedFiguresTests(MemberTestCase):
    """L7: an outside run cannot skew a suite's figures nor this server's scheduling."""

    def test_duration_longer_than_its_start_to_stop_is_refused(self):
        run_id = self.start()
        event = test_event("tests/test_a.py::t", duration=1.0)
        event["duration"] = 1e7
        self.assert_refused(self.send(run_id, event), "events[0].duration")
        assert self.send(run_id, test_event("tests/test_a.py::t", duration=1.0)).status_code == 200

    def test_wall_seconds_longer_than_the_run_is_refused(self):
        run_id = self.start()
        self.assert_refused(self.finish(run_id, wall_seconds=1e7), "wall_seconds")
        assert Run.objects.get(pk=run_id).status == Run.Status.RUNNING
        assert self.finish(run_id, wall_seconds=2.0).status_code == 200

    def test_an_argument_has_a_length_cap(self):
        response = self.call("/api/ingest/runs", {"suite": "demo", "args": ["x" * 100_000]})
        self.assert_refused(response, "args")
        assert not Run.objects.exists()

    def test_outside_runs_do_not_feed_the_schedulers_history(self):
        run_id = self.start()
        assert self.send(run_id, test_event("tests/test_a.py::t", duration=0.9)).status_code == 200
        assert self.finish(run_id).status_code == 200
        assert Run.objects.get(pk=run_id).status in Run.COMPLETE
        assert launch.duration_history(self.suite) == {}
        make_run(self.suite, results=[("tests/test_a.py::t", "gw0", "passed", 0.2)])
        assert launch.duration_history(self.suite) == {"tests/test_a.py::t": 0.2}


class DisguisedIdsTests(MemberTestCase):
    """L9: node ids and worker ids hold no control, format or separator characters."""

    def test_ingestion_refuses_disguised_node_ids_and_workers(self):
        run_id = self.start()
        for nodeid in DISGUISED:
            with self.subTest(nodeid=nodeid):
                self.assert_refused(self.send(run_id, test_event(nodeid)), "nodeid")
        for worker in ("gw\u202e0", "gw\x1b[2J", "gw\u2029"):
            with self.subTest(worker=worker):
                event = test_event("tests/test_a.py::t", worker=worker)
                self.assert_refused(self.send(run_id, event), "worker")
        assert not TestResult.objects.exists()

    def test_the_rerun_form_refuses_them(self):
        source = make_run(self.suite, results=[(n, "gw0", "failed", 0.1) for n in DISGUISED])
        for nodeid in DISGUISED:
            with self.subTest(nodeid=nodeid):
                response, messages = self.rerun(nodeid, source.id)
                assert response.status_code == 302
                assert any("Not a test id" in m for m in messages), messages
        assert Run.objects.count() == 1


class QueueShareTests(MemberTestCase):
    """One member cannot fill the shared queue (no dispatcher runs here: launched runs wait)."""

    def test_a_member_has_a_share_of_the_queue_and_staff_none(self):
        from django.test import override_settings

        with override_settings(PTD_MAX_QUEUED_PER_USER=3):
            for _ in range(3):
                assert self.call("/api/runs", {"suite": "demo"}).status_code == 201
            refused = self.call("/api/runs", {"suite": "demo"})
            assert refused.status_code == 429
            assert refused.json()["detail"] == (
                "you have 3 runs waiting to start (at most 3 per user): "
                "wait for them or cancel some"
            )
            assert Run.objects.filter(user=self.member).count() == 3
            # The form says the same; a finished run frees its place.
            self.client.force_login(self.member)
            page = self.client.post("/suites/demo/", {"config": self.config.pk})
            self.assertContains(page, "at most 3 per user", status_code=400)
            Run.objects.filter(pk=Run.objects.filter(user=self.member).first().pk).update(
                status=Run.Status.CANCELLED
            )
            assert self.call("/api/runs", {"suite": "demo"}).status_code == 201
            # Staff (who run the dashboard) are not limited.
            for _ in range(4):
                launch.launch(self.suite, user=self.staff)
            assert Run.objects.filter(user=self.staff).count() == 4
