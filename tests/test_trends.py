"""Trends: the series JSON (aggregated, no N+1), its filters, and the chart page."""

from django.urls import reverse

from runs.models import Run
from tests.base import BaseTestCase
from tests.factories import make_run


class TrendsTests(BaseTestCase):
    def make_runs(self, count, **fields):
        return [
            make_run(
                self.suite,
                wall_seconds=10.0,
                speedup=2.0,
                efficiency=0.5,
                balance=1.1,
                flakiness_rate=0.0,
                tests_total=4,
                tests_passed=3,
                **fields,
            )
            for _ in range(count)
        ]

    def test_series_is_one_query_whatever_the_number_of_runs(self):
        self.login_member()
        url = reverse("trends_data", args=["demo"])
        self.make_runs(3)
        self.client.get(url)  # warm the session / user look-ups
        with self.assertNumQueries(4):  # session, user, suite, then the whole series in one
            few = self.client.get(url).json()["points"]
        self.make_runs(30)
        with self.assertNumQueries(4):
            many = self.client.get(url).json()["points"]
        assert len(few) == 3 and len(many) == 33

    def test_points_carry_metrics_and_link_to_their_run(self):
        run = self.make_runs(1, branch="main")[0]
        self.login_member()
        point = self.client.get(reverse("trends_data", args=["demo"])).json()["points"][0]
        assert point["run_id"] == run.id and point["url"] == f"/runs/{run.id}/"
        assert point["pass_rate"] == 0.75 and point["efficiency"] == 0.5
        assert point["branch"] == "main"

    def test_filters_by_workers_and_branch_and_skip_unfinished_runs(self):
        make_run(self.suite, workers=4, branch="main")
        make_run(self.suite, workers=2, branch="dev")
        make_run(self.suite, workers=4, branch="main", status=Run.Status.ERROR)
        self.login_member()
        url = reverse("trends_data", args=["demo"])
        assert len(self.client.get(url).json()["points"]) == 2
        assert [p["workers"] for p in self.client.get(url, {"workers": 4}).json()["points"]] == [4]
        assert [p["branch"] for p in self.client.get(url, {"branch": "dev"}).json()["points"]] == [
            "dev"
        ]
        assert len(self.client.get(url, {"workers": "abc"}).json()["points"]) == 2

    def test_configuration_filter_and_label_are_the_name_a_run_was_made_under(self):
        smoke = self.suite.configs.create(name="smoke")
        made = self.make_runs(2, config=smoke)
        self.make_runs(1, config=self.config)
        for run in made:
            run.config_snapshot["name"] = "smoke"
            run.save()
        smoke.name = "quick"  # renamed afterwards: its past runs stay "smoke" runs
        smoke.save()
        self.login_member()
        url = reverse("trends_data", args=["demo"])
        points = self.client.get(url, {"config": "smoke"}).json()["points"]
        assert [p["run_id"] for p in points] == [r.id for r in made]
        assert {p["config"] for p in points} == {"smoke"}
        assert self.client.get(url, {"config": "quick"}).json()["points"] == []
        page = self.client.get(reverse("trends"), {"suite": "demo"})
        assert {"smoke", "quick", "default"} <= set(page.context["choices"]["configs"])

    def test_page_gives_the_data_url_to_its_script(self):
        self.login_member()
        response = self.client.get(reverse("trends"), {"suite": "demo", "workers": "4"})
        assert response.status_code == 200
        self.assertContains(response, 'data-url="/trends/demo/data/?suite=demo&amp;workers=4"')
        self.assertContains(response, "js/trends.js")
        self.assertContains(response, "plotly/plotly.min.js")

    def test_unknown_suite_is_404(self):
        self.login_member()
        assert self.client.get(reverse("trends"), {"suite": "nope"}).status_code == 404
        assert self.client.get(reverse("trends_data", args=["nope"])).status_code == 404
