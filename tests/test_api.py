"""The HTTP API: auth (none / bad / member / staff), validation, happy paths."""

import xml.etree.ElementTree as ET

from django.contrib.staticfiles import finders

from runs.models import ApiToken, Run, RunConfig, Suite
from tests.base import BaseTestCase
from tests.factories import make_run


class ApiTestCase(BaseTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        _, cls.member_token = ApiToken.create_for(cls.member, "ci")
        _, cls.staff_token = ApiToken.create_for(cls.staff, "admin")

    def call(self, method, url, token=None, **kwargs):
        headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
        return getattr(self.client, method)(
            url, content_type="application/json", **headers, **kwargs
        )


class AuthTests(ApiTestCase):
    def test_no_token_is_401_json(self):
        response = self.client.get("/api/suites")
        assert response.status_code == 401
        assert "detail" in response.json()

    def test_bad_token_is_401(self):
        assert self.call("get", "/api/suites", token="ptd_nope").status_code == 401

    def test_member_token_lists_suites(self):
        response = self.call("get", "/api/suites", token=self.member_token)
        assert response.status_code == 200
        assert [s["name"] for s in response.json()["items"]] == ["demo"]

    def test_token_use_is_recorded(self):
        self.call("get", "/api/suites", token=self.member_token)
        assert ApiToken.objects.get(user=self.member).last_used_at is not None

    def test_session_auth_works(self):
        self.login_member()
        assert self.client.get("/api/suites").status_code == 200

    def test_openapi_schema_is_served(self):
        response = self.call("get", "/api/openapi.json", self.member_token)
        assert response.status_code == 200
        assert "/api/runs" in response.json()["paths"]


class SuiteApiTests(ApiTestCase):
    def payload(self, **extra):
        return {"name": "api-suite", "path": self.suite.path, **extra}

    def test_member_cannot_create_suites(self):
        response = self.call("post", "/api/suites", self.member_token, data=self.payload())
        assert response.status_code == 403
        assert "staff" in response.json()["detail"]
        assert not Suite.objects.filter(name="api-suite").exists()

    def test_staff_creates_a_suite(self):
        response = self.call("post", "/api/suites", self.staff_token, data=self.payload(workers=8))
        assert response.status_code == 201, response.content
        suite = Suite.objects.get(name="api-suite")
        assert suite.default_config().workers == 8

    def test_bad_path_names_the_field(self):
        response = self.call(
            "post", "/api/suites", self.staff_token, data=self.payload(path="/no/such")
        )
        assert response.status_code == 400
        assert "path" in response.json()["detail"]

    def test_missing_field_is_422_naming_it(self):
        response = self.call("post", "/api/suites", self.staff_token, data={"name": "x"})
        assert response.status_code == 422
        assert "path" in str(response.json()["detail"])


class RunApiTests(ApiTestCase):
    def test_create_run_queues_it(self):
        response = self.call(
            "post",
            "/api/runs",
            self.member_token,
            data={"suite": "demo", "workers": 2, "branch": "main", "commit": "abc123"},
        )
        assert response.status_code == 201, response.content
        body = response.json()
        run = Run.objects.get(pk=body["id"])
        assert body == {"id": run.id, "status": "queued", "url": f"/runs/{run.id}/"}
        assert run.trigger == "api" and run.user == self.member
        assert run.config_snapshot["workers"] == 2 and run.branch == "main"

    def test_suite_by_id_works_and_unknown_suite_is_404(self):
        ok = self.call("post", "/api/runs", self.member_token, data={"suite": self.suite.id})
        assert ok.status_code == 201
        missing = self.call("post", "/api/runs", self.member_token, data={"suite": "nope"})
        assert missing.status_code == 404 and "nope" in missing.json()["detail"]

    def test_a_named_configuration_is_launched_by_its_name_or_id(self):
        smoke = RunConfig.objects.create(suite=self.suite, name="smoke", workers=3, keyword="ok")
        for ref in ("smoke", smoke.id):
            with self.subTest(ref=ref):
                data = {"suite": "demo", "config": ref, "repeat": 2}
                response = self.call("post", "/api/runs", self.member_token, data=data)
                assert response.status_code == 201, response.content
                run = Run.objects.get(pk=response.json()["id"])
                snap = run.config_snapshot
                assert run.config == smoke and (snap["workers"], snap["keyword"]) == (3, "ok")
                assert snap["repeat"] == 2  # overrides apply on top of it
        data = {"suite": "demo", "config": "nope"}
        missing = self.call("post", "/api/runs", self.member_token, data=data)
        assert missing.status_code == 404 and "no configuration 'nope'" in missing.json()["detail"]

    def test_bad_options_are_400_naming_the_field(self):
        for data, field in [
            ({"workers": 0.5}, "workers"),
            ({"workers": 1000}, "workers"),
            ({"dist": "random"}, "dist"),
            ({"engine": "threads"}, "engine"),
            ({"repeat": 0}, "repeat"),
        ]:
            with self.subTest(data=data):
                response = self.call(
                    "post", "/api/runs", self.member_token, data={"suite": "demo", **data}
                )
                assert response.status_code in (400, 422), response.content
                assert field in str(response.json()["detail"])
        assert not Run.objects.exists()

    def test_run_detail_results_and_filters(self):
        run = make_run(
            self.suite,
            results=[("t.py::a", "gw0", "passed", 1.0), ("t.py::b", "gw1", "failed", 2.0)],
            status="failed",
            branch="feature",
        )
        detail = self.call("get", f"/api/runs/{run.id}", self.member_token).json()
        assert detail["status"] == "failed"
        assert {w["id"] for w in detail["per_worker"]} == {"gw0", "gw1"}
        results = self.call("get", f"/api/runs/{run.id}/results?limit=1", self.member_token)
        assert results.json()["count"] == 2 and len(results.json()["items"]) == 1
        listed = self.call("get", "/api/runs?branch=feature", self.member_token).json()
        assert [r["id"] for r in listed["items"]] == [run.id]
        assert self.call("get", "/api/runs?branch=none", self.member_token).json()["count"] == 0
        assert self.call("get", "/api/runs/999999", self.member_token).status_code == 404

    def test_junit_xml_has_one_case_per_test(self):
        run = make_run(
            self.suite,
            results=[
                ("tests/test_a.py::TestX::test_one", "gw0", "rerun", 0.5),
                ("tests/test_a.py::TestX::test_one", "gw0", "passed", 0.5),
                ("tests/test_a.py::test_two", "gw1", "failed", 1.0),
            ],
            status="failed",
        )
        response = self.call("get", f"/api/runs/{run.id}/junit.xml", self.member_token)
        assert response.status_code == 200
        root = ET.fromstring(response.content)
        suite = root.find("testsuite")
        assert suite.get("tests") == "2" and suite.get("failures") == "1"
        cases = {c.get("name"): c for c in suite.findall("testcase")}
        assert cases["test_one"].get("classname") == "tests.test_a.TestX"
        assert "flaky" in cases["test_one"].find("system-out").text
        assert cases["test_two"].find("failure") is not None

    def test_cancel_queued_run_then_conflict(self):
        run = Run.objects.create(suite=self.suite, config_snapshot={}, user=self.member)
        response = self.call("post", f"/api/runs/{run.id}/cancel", self.member_token)
        assert response.status_code == 200 and response.json()["status"] == "cancelled"
        again = self.call("post", f"/api/runs/{run.id}/cancel", self.member_token)
        assert again.status_code == 409


class ApiReviewTests(ApiTestCase):
    """Gaps found reviewing the API against issue #5."""

    def test_bad_token_on_post_is_401_not_a_csrf_403(self):
        response = self.call("post", "/api/runs", token="ptd_nope", data={"suite": "demo"})
        assert response.status_code == 401
        assert self.call("post", "/api/runs", data={"suite": "demo"}).status_code == 401

    def test_session_post_still_needs_csrf(self):
        client = self.client_class(enforce_csrf_checks=True)
        client.force_login(self.member)
        response = client.post("/api/runs", {"suite": "demo"}, content_type="application/json")
        assert response.status_code == 403 and "CSRF" in response.json()["detail"]

    def test_list_filters_and_pagination(self):
        a = make_run(self.suite, status="passed", branch="main", commit="abcdef1")
        b = make_run(self.suite, status="failed", branch="main", commit="1234567")
        c = make_run(self.suite, status="failed", branch="dev", trigger="external")

        def ids(query):
            response = self.call("get", f"/api/runs?{query}", self.member_token)
            assert response.status_code == 200, response.content
            return sorted(r["id"] for r in response.json()["items"])

        assert ids("status=failed") == [b.id, c.id]
        assert ids("limit=1000&offset=1000000000") == []
        assert ids("branch=main&status=failed") == [b.id]
        assert ids("commit=abc") == [a.id]
        assert ids("trigger=external") == [c.id]
        assert ids("suite=demo") == [a.id, b.id, c.id]
        assert ids("suite=other") == []
        page = self.call("get", "/api/runs?limit=2&offset=1", self.member_token).json()
        assert page["count"] == 3 and len(page["items"]) == 2

    def test_bad_filters_and_paging_are_422_naming_the_field(self):
        for query, field in [
            ("status=exploded", "status"),
            ("trigger=robot", "trigger"),
            ("limit=abc", "limit"),
            ("offset=-1", "offset"),
            ("limit=57540176894650302332928", "limit"),  # found by schemathesis: was a 500
            ("offset=99999999999999999999", "offset"),
        ]:
            with self.subTest(query=query):
                response = self.call("get", f"/api/runs?{query}", self.member_token)
                assert response.status_code == 422
                assert field in str(response.json()["detail"])

    def test_odd_suite_references_are_404(self):
        for ref in ("²", "9" * 30, "   "):
            with self.subTest(ref=ref):
                response = self.call("post", "/api/runs", self.member_token, data={"suite": ref})
                assert response.status_code == 404

    def test_docs_page_is_served_to_logged_in_users(self):
        self.login_member()
        response = self.client.get("/api/docs")
        assert response.status_code == 200 and b"openapi.json" in response.content
        # Swagger UI comes from ninja's package through staticfiles, never from a CDN.
        assert b"/static/ninja/swagger-ui-bundle.js" in response.content
        assert finders.find("ninja/swagger-ui-bundle.js")
