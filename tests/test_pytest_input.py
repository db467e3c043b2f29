"""Issue #12 item 1: nothing a member types reaches pytest's argv unless it is a plain node id
inside the suite or a -k / -m expression (runs/pytest_input.py, at every entrance)."""

from django.conf import settings
from django.contrib.messages import get_messages

from runs.execution import launch
from runs.execution.pytest_input import LaunchError, check_args, check_nodeid, nodeid_problem
from runs.models import ApiToken, Run, TestResult, TestStat
from tests.base import BaseTestCase
from tests.factories import make_run, test_event

PASSWORD_FILE = f"{settings.DATA_DIR}/initial_admin_password"
HOSTILE = [
    f"@{PASSWORD_FILE}",  # pytest reads "@FILE" as a file of arguments: its text in the error
    "@secret_key",
    f"{settings.PTD_DEMO_SUITE_DIR.parent}/other/test_x.py::test_y",  # absolute: any file
    "../outside/test_x.py::test_y",
    "tests/../../outside/test_x.py::test_y",
    "tests/test_a.py[x/../../..]::t",  # pytest < 8 takes all before "::" as the path
    "tests/..[x]::t",  # pytest >= 8 cuts the path at the first "["
    "-p evil",
    "--rootdir=/",
    "tests//test_a.py::t",
    "tests\\..\\..\\x.py::t",
    "tests/test_a.py::t\nsecond",
]
VALID = [
    "tests/test_a.py::test_x",
    "tests/test_a.py::TestK::test_x[a/../b-@c]",  # parameters may hold anything printable
    "test_a.py",
    "tests/sub dir/test_b.py::test_y[1-2]",
]


def test_node_id_grammar():
    for nodeid in HOSTILE:
        assert nodeid_problem(nodeid), nodeid
    for nodeid in VALID:
        assert nodeid_problem(nodeid) is None, nodeid
        assert check_nodeid(nodeid) == nodeid


def test_extra_arguments_from_members_are_node_ids_only():
    for arg in ("-p", "@args.txt", "--rootdir=/", "-c", "/etc/x.ini", "--override-ini=x=1"):
        try:
            check_args([arg], trusted=False)
        except LaunchError as exc:
            assert exc.field == "extra_args"
        else:
            raise AssertionError(f"{arg!r} accepted from a member")
    assert check_args(["tests/test_a.py::t"], trusted=False) == ["tests/test_a.py::t"]
    # Staff settings and the operator's `run_suite -- ARGS` may pass any argument.
    assert check_args(["-p", "xdist", "--rootdir=/srv"], trusted=True) == [
        "-p",
        "xdist",
        "--rootdir=/srv",
    ]


class RerunAttackTests(BaseTestCase):
    """The attack in the issue, through the real endpoints as a member."""

    def setUp(self):
        _, self.token = ApiToken.create_for(self.member, "ci")
        self.auth = {"HTTP_AUTHORIZATION": f"Bearer {self.token}"}

    def ingest(self, nodeid):
        run = self.client.post(
            "/api/ingest/runs", {"suite": "demo"}, content_type="application/json", **self.auth
        )
        assert run.status_code == 201, run.content
        run_id = run.json()["id"]
        response = self.client.post(
            f"/api/ingest/runs/{run_id}/events",
            {"events": [test_event(nodeid, "failed")]},
            content_type="application/json",
            **self.auth,
        )
        return run_id, response

    def rerun(self, nodeid, run_id=""):
        self.login_member()
        response = self.client.post(
            "/suites/demo/rerun/", {"nodeid": nodeid, "times": "1", "run": run_id}
        )
        return response, [str(m) for m in get_messages(response.wsgi_request)]

    def test_ingesting_then_rerunning_an_argument_file_is_refused(self):
        run_id, response = self.ingest(f"@{PASSWORD_FILE}")
        assert response.status_code == 400
        assert "events[0].nodeid" in response.json()["detail"]
        assert not TestResult.objects.exists()
        response, messages = self.rerun(f"@{PASSWORD_FILE}", run_id)
        assert response.status_code == 302
        assert any("Not a test id" in m for m in messages), messages
        assert list(Run.objects.values_list("id", flat=True)) == [run_id]  # no run launched

    def test_hostile_ids_stored_before_the_fix_are_not_rerun(self):
        """Ids an older server accepted stay in the database: the rerun form refuses them."""
        source = make_run(self.suite, results=[(n, "gw0", "failed", 0.1) for n in HOSTILE])
        for nodeid in HOSTILE:
            TestStat.objects.create(suite=self.suite, nodeid=nodeid, runs_seen=1)
        for nodeid in HOSTILE:
            with self.subTest(nodeid=nodeid):
                response, messages = self.rerun(nodeid, source.id)
                assert response.status_code == 302
                assert any("Not a test id" in m for m in messages), messages
        assert Run.objects.count() == 1

    def test_ingestion_refuses_absolute_and_parent_paths(self):
        for nodeid in HOSTILE:
            with self.subTest(nodeid=nodeid):
                _, response = self.ingest(nodeid)
                assert response.status_code in (400, 422), response.content
        assert not TestResult.objects.exists()

    def test_a_plain_known_test_is_still_rerun(self):
        """Known to the server: it ran it (an id only ingested is not enough, review M1)."""
        nodeid = "tests/test_demo.py::test_one"
        run_id, response = self.ingest(nodeid)
        assert response.status_code == 200, response.content
        TestStat.objects.create(suite=self.suite, nodeid=nodeid, runs_seen=1)
        self.rerun(nodeid)
        assert list(Run.objects.values_list("id", flat=True)) == [run_id]
        source = make_run(self.suite, results=[(nodeid, "gw0", "failed", 0.1)])
        self.rerun(nodeid)
        rerun = Run.objects.exclude(pk__in=[run_id, source.id]).get()
        assert rerun.config_snapshot["extra_args"][-1] == nodeid


class LastGateTests(BaseTestCase):
    """launch.launch and build_spec check again: no entrance can skip the rules."""

    def test_launch_refuses_a_hostile_rerun_id_and_member_arguments(self):
        for nodeid in HOSTILE:
            with self.subTest(nodeid=nodeid):
                try:
                    launch.launch(self.config, user=self.member, rerun_of=nodeid)
                except LaunchError as exc:
                    assert exc.field == "nodeid"
                else:
                    raise AssertionError(f"{nodeid!r} launched")
        try:
            launch.launch(self.config, user=self.member, extra_args=["-p", "evil"])
        except LaunchError as exc:
            assert exc.field == "extra_args"
        else:
            raise AssertionError("a member's -p launched")
        assert not Run.objects.exists()

    def test_build_spec_refuses_a_queued_run_with_a_hostile_selection(self):
        for snap in ({"rerun_of": f"@{PASSWORD_FILE}"}, {"keyword": "@/etc/passwd"}):
            with self.subTest(snap=snap):
                run = Run.objects.create(
                    suite=self.suite, config_snapshot={"workers": 1, "extra_args": [], **snap}
                )
                try:
                    launch.build_spec(run)
                except LaunchError:
                    pass
                else:
                    raise AssertionError("argv built")

    def test_api_refuses_an_argument_file_as_keyword(self):
        _, raw = ApiToken.create_for(self.member)
        response = self.client.post(
            "/api/runs",
            {"suite": "demo", "markers": f"@{PASSWORD_FILE}"},
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {raw}",
        )
        assert response.status_code == 400 and "markers" in response.json()["detail"]
        assert not Run.objects.exists()
