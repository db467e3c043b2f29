"""Addresses and numbers no user should type, answered with a 4xx in the client's own shape.

Found by a review: a 5,000-digit "id" made ``int()`` raise (Python converts at most 4,300
digits) and a NUL character in an address made PostgreSQL refuse the lookup: both were 500s.
CI runs this module on PostgreSQL too.
"""

from __future__ import annotations

from django.test import Client

from runs.models import ApiToken
from tests.base import BaseTestCase
from tests.factories import make_run

HUGE = "9" * 5000


class BadAddressTestCase(BaseTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        _, cls.token = ApiToken.create_for(cls.staff, "ci")

    def setUp(self):
        self.run = make_run(self.suite)
        self.login_staff()
        self.api = Client(HTTP_AUTHORIZATION=f"Bearer {self.token}")

    def assert_json_detail(self, response, status):
        assert response.status_code == status, response.content[:300]
        assert response["Content-Type"].startswith("application/json")
        assert response.json()["detail"]


class HugeNumberTests(BadAddressTestCase):
    def test_pages_treat_a_huge_number_as_no_number(self):
        answers = {
            f"/runs/rows/?limit={HUGE}": 200,  # the first page, as with no limit
            f"/trends/demo/data/?workers={HUGE}": 200,  # no filter
            f"/suites/demo/load/compare/?a={HUGE}&b=1": 404,
            f"/runs/{self.run.id}/compare/?with={HUGE}": 302,  # back to the run, saying why
        }
        for url, status in answers.items():
            with self.subTest(url=url[:40]):
                assert self.client.get(url).status_code == status

    def test_forms_say_what_is_wrong(self):
        response = self.client.post("/suites/demo/sweep/", {"workers": f"1, 2, {HUGE}"})
        self.assertContains(response, "whole number", status_code=400)  # the form, its error
        response = self.client.post(
            "/suites/demo/rerun/",
            {"nodeid": "test_api.py::test_health", "times": "1", "run": HUGE},
        )
        assert response.status_code == 302  # back, with a message: the run is no run

    def test_the_api_answers_a_huge_suite_id_with_json(self):
        self.assert_json_detail(self.api.get(f"/api/suites/{HUGE}/scaling"), 404)
        response = self.api.post(
            "/api/runs", {"suite": HUGE, "workers": 1}, content_type="application/json"
        )
        assert 400 <= response.status_code < 500
        assert response.json()["detail"]


class NulTests(BadAddressTestCase):
    def test_a_page_address_holding_nul_is_a_400_page(self):
        for url in ("/runs/?branch=%00", "/runs/rows/?suite=%00", "/suites/%00/",
                    "/suites/demo/tests/a%00b", "/trends/demo/data/?config=%00"):  # fmt: skip
            with self.subTest(url=url):
                self.assertContains(self.client.get(url), "NUL character", status_code=400)

    def test_an_api_address_holding_nul_is_a_json_400(self):
        self.assert_json_detail(self.api.get("/api/runs?branch=%00"), 400)
        self.assert_json_detail(self.api.get("/api/suites/%00/flaky"), 400)


class ApiErrorShapeTests(BadAddressTestCase):
    def test_an_unknown_api_address_is_a_json_404(self):
        self.assert_json_detail(self.api.get("/api/nonexistent"), 404)
        self.assert_json_detail(self.api.get("/api/runs/"), 404)

    def test_a_wrong_method_is_a_json_405_naming_the_right_ones(self):
        response = self.api.delete(f"/api/runs/{self.run.id}")
        self.assert_json_detail(response, 405)
        assert "GET" in response["Allow"]
        self.assert_json_detail(self.api.get(f"/api/runs/{self.run.id}/cancel"), 405)

    def test_too_many_query_parameters_is_a_json_400(self):
        query = "&".join(f"p{i}=1" for i in range(1200))  # DATA_UPLOAD_MAX_NUMBER_FIELDS: 1000
        self.assert_json_detail(self.api.get(f"/api/runs?{query}"), 400)
