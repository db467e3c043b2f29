"""GET /api/suites/{suite}/flaky, /api/suites/{suite}/trends, /api/tests/{suite}/{nodeid}/history
(a suite by its id or its name)."""

from runs.flaky import summary as flaky
from runs.models import ApiToken, Run
from tests.base import BaseTestCase
from tests.factories import make_run

NODE = "tests/sub/test_b.py::TestX::test_y[a/b::c]"


class FlakyApiTests(BaseTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        cls.runs = []
        for outcome in ("failed", "passed"):
            run = make_run(
                cls.suite,
                status=Run.Status.FAILED if outcome == "failed" else Run.Status.PASSED,
                results=[
                    (f"{NODE}[1-2]", "gw0", "passed", 0.2),
                    (f"{NODE}[2-2]", "gw1", outcome, 0.4),
                    ("t.py::ok", "gw0", "passed", 0.1),
                ],
                wall_seconds=1.0, speedup=1.5, efficiency=0.75, balance=1.1,
                flakiness_rate=0.5 if outcome == "failed" else 0.0, tests_total=3, tests_passed=2,
            )  # fmt: skip
            flaky.record_run(run)
            cls.runs.append(run)
        _, cls.raw = ApiToken.create_for(cls.member, "ci")

    def get(self, url):
        return self.client.get(url, HTTP_AUTHORIZATION=f"Bearer {self.raw}")

    def test_flaky_list_schema(self):
        data = self.get(f"/api/suites/{self.suite.id}/flaky").json()
        self.assertEqual(data["count"], 1)
        item = data["items"][0]
        self.assertEqual(item["nodeid"], NODE)
        self.assertEqual((item["flip_count"], item["runs_seen"]), (1, 2))
        self.assertEqual(item["fail_rate"], 0.25)
        for key in ("last_flip_at", "parallel_only", "quarantined", "flip_rate"):
            self.assertIn(key, item)

    def test_trends_one_point_per_run(self):
        points = self.get(f"/api/suites/{self.suite.id}/trends").json()["points"]
        self.assertEqual([p["run_id"] for p in points], [r.id for r in self.runs])
        first = points[0]
        expected = {"time", "run_id", "workers", "wall_seconds", "speedup", "efficiency",
                    "balance", "flakiness_rate", "pass_rate"}  # fmt: skip
        self.assertLessEqual(expected, set(first))
        self.assertEqual((first["flakiness_rate"], first["pass_rate"]), (0.5, 0.6667))

    def test_history_with_slashes_and_colons_in_the_nodeid(self):
        response = self.get(f"/api/tests/{self.suite.id}/{NODE}/history")
        self.assertEqual(response.status_code, 200)
        data = response.json()
        self.assertEqual([p["outcome"] for p in data["points"]], ["flaky", "passed"])
        self.assertEqual(data["summary"]["flip_count"], 1)
        self.assertEqual(data["by_worker_id"][1], {"key": "gw1", "attempts": 2, "failures": 1,
                                                   "fail_rate": 0.5})  # fmt: skip
        self.assertEqual(data["errors"][0]["count"], 1)

    def test_a_suite_is_named_by_its_id_or_its_name_as_everywhere_in_the_api(self):
        by_id = self.get(f"/api/suites/{self.suite.id}/flaky").json()
        assert self.get(f"/api/suites/{self.suite.name}/flaky").json() == by_id
        trends = self.get(f"/api/suites/{self.suite.name}/trends")
        assert trends.status_code == 200 and trends.json()["suite"] == self.suite.name
        assert self.get(f"/api/tests/{self.suite.name}/{NODE}/history").status_code == 200
        assert "no suite 'nope'" in self.get("/api/suites/nope/flaky").json()["detail"]

    def test_errors_are_json_details(self):
        self.assertEqual(self.get("/api/suites/999/flaky").status_code, 404)
        response = self.get(f"/api/tests/{self.suite.id}/nope.py::t/history")
        self.assertEqual(response.status_code, 404)
        self.assertIn("detail", response.json())
        self.assertEqual(self.client.get(f"/api/suites/{self.suite.id}/flaky").status_code, 401)

    def test_openapi_documents_the_routes(self):
        paths = self.get("/api/openapi.json").json()["paths"]
        self.assertIn("/api/suites/{suite_id}/flaky", paths)
        self.assertIn("/api/suites/{suite_id}/trends", paths)
        self.assertTrue(any(p.startswith("/api/tests/{suite_id}/") for p in paths))
