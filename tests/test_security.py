"""Security review regressions: hostile input gets a 4xx or a form error (never a 500), the
API's schema and docs need a login, and user text never becomes a pytest option."""

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from runs.execution import launch
from runs.models import ApiToken, Run, TestStat
from tests.base import BaseTestCase
from tests.factories import make_run

NODEID = "tests/test_a.py::test_x"


class HostileInputTests(BaseTestCase):
    def setUp(self):
        self.client.raise_request_exception = False
        self.run = make_run(
            self.suite,
            results=[(NODEID, "gw0", "failed", 0.1), (NODEID, "gw1", "passed", 0.1)],
        )
        TestStat.objects.create(suite=self.suite, nodeid=NODEID, runs_seen=1, flip_count=1)

    def test_quarantine_next_that_is_not_a_path_goes_back_to_the_test(self):
        self.login_staff()
        for target in ("abc", "home", "²", "<script>"):
            with self.subTest(next=target):
                response = self.client.post(
                    "/suites/demo/quarantine/set/",
                    {"nodeid": NODEID, "reason": "flaky", "next": target},
                )
                assert response.status_code == 302
                assert response["Location"] == f"/suites/demo/tests/{NODEID}"

    def test_rerun_with_a_non_ascii_digit_run_id_is_not_a_500(self):
        self.login_member()
        response = self.client.post(
            "/suites/demo/rerun/", {"nodeid": NODEID, "times": "0", "run": "²", "next": "x"}
        )
        assert response.status_code == 302
        assert response["Location"] == f"/suites/demo/tests/{NODEID}"

    def test_trends_with_a_non_ascii_digit_worker_count(self):
        self.login_member()
        for url in ("/trends/", "/trends/demo/data/"):
            with self.subTest(url=url):
                assert self.client.get(url, {"workers": "²"}).status_code == 200
        api = self.client.get(f"/api/suites/{self.suite.pk}/trends", {"workers": "²"})
        assert api.status_code == 200

    def test_report_dates_at_the_ends_of_the_calendar(self):
        self.login_member()
        for url in ("/suites/demo/report/", "/suites/demo/report/runs.csv"):
            for params in (
                {"since": "9999-12-31"},
                {"until": "9999-12-31"},
                {"until": "0001-01-01"},
                {"since": "0001-01-01", "until": "0001-01-02"},
            ):
                with self.subTest(url=url, params=params):
                    assert self.client.get(url, params).status_code == 200


class ExpressionOptionTests(BaseTestCase):
    """-k / -m values follow their option in argv; they must not read as options."""

    def test_launch_form_refuses_an_option_as_keyword_or_markers(self):
        self.login_member()
        for field, value in (("keyword", "-p evil"), ("markers", "--co"), ("keyword", "a\x00b")):
            with self.subTest(field=field, value=value):
                response = self.client.post(
                    "/suites/demo/", {"config": self.config.pk, field: value}
                )
                assert response.status_code == 400
                assert Run.objects.count() == 0

    def test_api_refuses_it_with_a_400(self):
        _, raw = ApiToken.create_for(self.member)
        client = Client(HTTP_AUTHORIZATION=f"Bearer {raw}")
        response = client.post(
            "/api/runs", {"suite": "demo", "keyword": "--help"}, content_type="application/json"
        )
        assert response.status_code == 400 and "keyword" in response.json()["detail"]

    def test_a_configured_option_is_refused_too(self):
        self.config.markers = "-x"
        self.config.save()
        with pytest.raises(launch.LaunchError):
            launch.launch(self.config)

    def test_expressions_are_still_accepted(self):
        launch.check_expression("keyword", "not slow and test_a")
        launch.check_expression("markers", "")


class ApiDocsLoginTests(BaseTestCase):
    def test_outsiders_get_a_login_redirect_or_a_401(self):
        client = Client()
        docs = client.get("/api/docs")
        assert docs.status_code == 302 and docs["Location"].startswith("/login/")
        schema = client.get("/api/openapi.json")
        assert schema.status_code == 401
        bad = Client(HTTP_AUTHORIZATION="Bearer ptd_nope").get("/api/openapi.json")
        assert bad.status_code == 401

    def test_a_token_or_a_session_reads_the_schema(self):
        _, raw = ApiToken.create_for(self.member)
        schema = Client(HTTP_AUTHORIZATION=f"Bearer {raw}").get("/api/openapi.json")
        assert schema.status_code == 200 and "/api/runs" in schema.json()["paths"]
        self.login_member()
        assert self.client.get("/api/openapi.json").status_code == 200


def test_serve_refuses_a_bad_port_with_exit_2():
    with pytest.raises(CommandError) as info:
        call_command("serve", "--port", "0", "--no-migrate")
    assert info.value.returncode == 2 and "--port" in str(info.value)
