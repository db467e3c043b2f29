"""A load run as the API, the pages, the websocket snapshot and the exports show it, from
stored figures built by the real aggregator out of engine events."""

from __future__ import annotations

import csv
import io
import json
import re

from django.db import connection
from django.test.utils import CaptureQueriesContext

from runner.loadstats import Entry
from runs.live.consumers import snapshot
from runs.load import export
from runs.load.aggregate import LoadAggregator
from runs.models import ApiToken, LoadSecond, Run
from runs.pages.load import _static_text
from tests.base import BaseTestCase
from tests.factories import make_run

T0 = 1_800_000_000.0
TEST = "tests/test_api.py::test_item"
ENDPOINT = "GET /items/{id}"
FIGURES = {
    "iterations",
    "failures",
    "rps",
    "min_ms",
    "mean_ms",
    "max_ms",
    "p50_ms",
    "p90_ms",
    "p95_ms",
    "p99_ms",
}


def entry(samples, failed=0):
    e = Entry()
    for i, ms in enumerate(samples):
        e.add(ms, failed=i < failed)
    return e


def stored_load_run(suite, thresholds=("p95<300ms", "errors<1%"), branch="main", slow=1.0, users=4):
    run = make_run(suite, status=Run.Status.PASSED, branch=branch)
    run.config_snapshot.update(
        mode="load",
        users=users,
        spawn_rate=2,
        duration=3,
        iterations=None,
        think_time=0.0,
        thresholds=list(thresholds),
    )
    run.save(update_fields=["config_snapshot"])
    aggregator = LoadAggregator.for_run(run)
    events = [{"type": "load_start", "time": T0, "users": users, "processes": 1, "tests": [TEST]}]
    for second in range(3):
        samples = [slow * (100 + i) for i in range(50)]
        events.append(
            {
                "type": "load_tick",
                "time": T0 + second + 1,
                "process": "p0",
                "second": second,
                "users": users,
                "tests": {TEST: entry(samples, failed=1).to_dict()},
                "requests": {
                    ENDPOINT: entry([s - 5 for s in samples], failed=1).to_dict(),
                    "=HYPERLINK(1) /x": entry([1.0]).to_dict(),
                },
            }
        )
    events.append(
        {
            "type": "load_error",
            "process": "p0",
            "name": ENDPOINT,
            "kind": "failure",
            "error": "HTTPError: 500 <b>Server</b> Error",
            "count": 3,
            "traceback": "Traceback: boom",
        }
    )
    events.append({"type": "load_stop", "time": T0 + 3, "reason": "duration"})
    aggregator.feed(events)
    aggregator.finish()
    return run


class LoadApiTests(BaseTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        _, cls.token = ApiToken.create_for(cls.member, "ci")
        cls.load = stored_load_run(cls.suite)

    def get(self, url):
        return self.client.get(url, HTTP_AUTHORIZATION=f"Bearer {self.token}")

    def test_run_detail_has_the_load_object_of_the_contract(self):
        load = self.get(f"/api/runs/{self.load.pk}").json()["load"]
        assert FIGURES | {"users", "duration_seconds", "thresholds", "tests", "endpoints"} <= set(
            load
        )
        assert load["users"] == 4
        assert load["duration_seconds"] == 3.0
        assert load["iterations"] == 150
        assert load["failures"] == 3
        assert load["rps"] == 50.0
        assert load["min_ms"] == 100.0 and load["max_ms"] == 149.0
        assert abs(load["p50_ms"] - 124) <= 124 * 0.05
        assert load["thresholds"] == [
            {"expr": "p95<300ms", "value": load["p95_ms"], "passed": True},
            {"expr": "errors<1%", "value": 2.0, "passed": False},
        ]
        (test,) = load["tests"]
        assert test["nodeid"] == TEST and set(test) >= FIGURES
        endpoint = next(e for e in load["endpoints"] if e["path"] == "/items/{id}")
        assert endpoint["method"] == "GET" and endpoint["iterations"] == 150
        assert set(endpoint) >= FIGURES

    def test_a_run_of_tests_has_no_load_and_no_series(self):
        plain = make_run(self.suite)
        assert self.get(f"/api/runs/{plain.pk}").json()["load"] is None
        response = self.get(f"/api/runs/{plain.pk}/load/series")
        assert response.status_code == 404
        assert "not a load run" in response.json()["detail"]

    def test_series_is_one_row_per_second(self):
        rows = self.get(f"/api/runs/{self.load.pk}/load/series").json()
        assert [r["second"] for r in rows] == [0, 1, 2]
        assert rows[0] | {"p50_ms": None, "p95_ms": None, "p99_ms": None, "mean_ms": None} == {
            "second": 0,
            "users": 4,
            "iterations": 50,
            "rps": 50,
            "failures": 1,
            "requests": 51,
            "request_failures": 1,
            "p50_ms": None,
            "p95_ms": None,
            "p99_ms": None,
            "mean_ms": None,
        }
        assert abs(rows[0]["p95_ms"] - 147) <= 147 * 0.05


class LoadPageTests(BaseTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        cls.load = stored_load_run(cls.suite)
        cls.newer = stored_load_run(cls.suite, branch="feature", slow=2.0)

    def setUp(self):
        self.login_member()

    def test_the_run_page_of_a_load_run_carries_its_figures_and_tables(self):
        page = self.client.get(f"/runs/{self.load.pk}/").content.decode()
        assert 'id="load-app"' in page and "js/load.js" in page
        for table in ("stats-tests", "stats-endpoints", "load-errors", "load-thresholds"):
            assert f'id="{table}"' in page
        assert 'id="load-data"' in page and '"iterations": 150' in page
        assert "<b>Server</b>" not in page  # error text is data, escaped in the JSON
        assert "<script>" not in page  # CSP: no inline script, only data

    def test_csv_exports(self):
        response = self.client.get(f"/runs/{self.load.pk}/load/stats.csv")
        assert response["Content-Disposition"].endswith('-stats.csv"')
        rows = list(csv.DictReader(io.StringIO(response.content.decode())))
        assert [(r["type"], r["name"]) for r in rows] == [
            ("test", TEST),
            ("endpoint", "'=HYPERLINK(1) /x"),
            ("endpoint", ENDPOINT),
            ("total", "Aggregated"),
        ]
        assert rows[-1]["iterations"] == "150" and rows[-1]["failures"] == "3"
        series = list(
            csv.DictReader(
                io.StringIO(
                    b"".join(
                        self.client.get(f"/runs/{self.load.pk}/load/series.csv").streaming_content
                    ).decode()
                )
            )
        )
        assert [r["second"] for r in series] == ["0", "1", "2"]
        assert series[1]["iterations"] == "50"

    def test_csv_exports_quote_a_cell_starting_with_a_tab_or_carriage_return(self):
        # Stored names are stripped; the rule is the report's too (runs.csvcell, one rule).
        body = export._csv(("name", "n"), [{"name": "\t=SUM(1)", "n": -3}, {"name": "\r=1"}])
        rows = list(csv.reader(io.StringIO(body, newline="")))
        assert rows[1:] == [["'\t=SUM(1)", "-3"], ["'\r=1", ""]]

    def test_html_report_is_self_contained(self):
        response = self.client.get(f"/runs/{self.load.pk}/load/report.html")
        assert response["Content-Disposition"].startswith("attachment")
        html = response.content.decode()
        assert "Plotly" in html and len(html) > 1_000_000  # plotly.js inline
        plotly = _static_text("plotly/plotly.min.js").replace("</", "<\\/")
        assert plotly in html  # inline, whole
        page = html.replace(plotly, "")
        assert not re.search(r"(src|href)=[\"']?(https?:)?//", page)  # fetches nothing
        assert "<script src" not in html and "<link" not in html
        assert 'id="load-data"' in html and '"iterations": 150' in html
        assert "<b>Server</b>" not in html
        assert html.count("</script>") == 4  # data, helper, plotly, load.js: none ended early

    def test_trend_and_comparison(self):
        page = self.client.get(f"/suites/{self.suite.name}/load/").content.decode()
        assert 'id="trend-data"' in page and '"feature"' in page and "js/load_trend.js" in page
        page = self.client.get(
            f"/suites/{self.suite.name}/load/compare/?a={self.load.pk}&b={self.newer.pk}"
        ).content.decode()
        assert 'id="compare-figures"' in page
        assert "+100.0 %" in page  # p95 doubled
        assert "<th>p95 (ms)</th>" in page and "<th>iterations/s</th>" in page  # not raw keys
        assert 'id="caveats"' not in page  # the same load: comparable
        heavier = stored_load_run(self.suite, users=40)
        page = self.client.get(
            f"/suites/{self.suite.name}/load/compare/?a={self.load.pk}&b={heavier.pk}"
        ).content.decode()
        assert "different loads (4 and 40 users)" in page
        for query in ("", f"?a={self.load.pk}", "?a=x&b=1", f"?a={self.load.pk}&b=99999"):
            response = self.client.get(f"/suites/{self.suite.name}/load/compare/{query}")
            assert response.status_code == 404, query

    def test_exports_of_a_run_of_tests_are_404(self):
        plain = make_run(self.suite)
        for tail in ("stats.csv", "series.csv", "report.html"):
            assert self.client.get(f"/runs/{plain.pk}/load/{tail}").status_code == 404

    def test_websocket_snapshot_of_a_load_run_has_its_load(self):
        data = snapshot(self.load.pk)
        assert [s["second"] for s in data["load"]["series"]] == [0, 1, 2]
        assert data["load"]["stats"]["total"]["iterations"] == 150
        assert data["load"]["errors"][0]["count"] == 3
        assert "load" not in snapshot(make_run(self.suite).pk)


class LoadRunsStayOutOfTestTrendsTests(BaseTestCase):
    def test_trends_reports_and_duration_history_leave_load_runs_out(self):
        from runs.execution.launch import duration_history
        from runs.pages.trends import series

        plain = make_run(self.suite, results=[(TEST, "gw0", "passed", 0.5)])
        stored_load_run(self.suite)
        assert [p["run_id"] for p in series(self.suite, {})] == [plain.pk]
        assert list(Run.objects.whole()) == [plain]
        assert duration_history(self.suite) == {TEST: 0.5}


def long_load_run(suite, seconds: int):
    """A finished load run of ``seconds`` stored seconds, written in bulk (the aggregator's
    rows, as a long run leaves them)."""
    run = make_run(suite, status=Run.Status.PASSED)
    run.config_snapshot.update(mode="load", users=5)
    run.save(update_fields=["config_snapshot"])
    rows = []
    for second in range(seconds):
        row = LoadSecond(run=run, second=second, users=5 if second % 1000 else 9)
        row.iterations, row.failures, row.total_ms = 10, second % 2, 1000.0
        row.p50_ms, row.p95_ms, row.p99_ms = 100.0, 150.0 + (second == 777) * 1000, 190.0
        rows.append(row)
    LoadSecond.objects.bulk_create(rows, batch_size=5000)
    return run


class LongLoadRunTests(BaseTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        _, cls.token = ApiToken.create_for(cls.member, "ci")
        cls.long = long_load_run(cls.suite, 10_000)

    def test_page_and_report_draw_at_most_2000_points_with_the_spikes(self):
        self.login_member()
        for url in (f"/runs/{self.long.pk}/", f"/runs/{self.long.pk}/load/report.html"):
            html = self.client.get(url).content.decode()
            data = html[html.index('id="load-data"') :]
            data = json.loads(data[data.index(">") + 1 : data.index("</script>")])
            points = data["series"]
            assert 1000 <= len(points) <= 2000, len(points)
            assert points[-1]["second"] + points[-1]["span"] == 10_000
            assert sum(p["iterations"] for p in points) == 100_000  # counts summed
            assert max(p["p95_ms"] for p in points) == 1150.0  # the spike stays
            assert max(p["users"] for p in points) == 9
            assert {p["rps"] for p in points} == {10.0}

    def test_page_and_report_read_the_load_once(self):
        self.login_member()
        for url in (f"/runs/{self.long.pk}/", f"/runs/{self.long.pk}/load/report.html"):
            with CaptureQueriesContext(connection) as queries:
                assert self.client.get(url).status_code == 200
            entries = [q for q in queries.captured_queries if "runs_loadentry" in q["sql"]]
            assert len(entries) == 1, url  # one snapshot: its entries read once

    def test_api_series_is_bounded_and_pages_with_a_next_cursor(self):
        auth = {"HTTP_AUTHORIZATION": f"Bearer {self.token}"}
        url = f"/api/runs/{self.long.pk}/load/series"
        first = self.client.get(url, **auth)
        assert [r["second"] for r in first.json()] == list(range(3600))
        assert first["X-Next-Since"] == "3600"
        assert first["Link"].endswith(f'{url}?since=3600&limit=3600>; rel="next"')
        last = self.client.get(f"{url}?since=9000&limit=5000", **auth)
        assert [r["second"] for r in last.json()] == list(range(9000, 10_000))
        assert "Link" not in last and "X-Next-Since" not in last
        for bad in ("limit=0", "limit=86401", "since=-1", "limit=x"):
            response = self.client.get(f"{url}?{bad}", **auth)
            assert response.status_code == 422 and "detail" in response.json(), bad

    def test_series_csv_streams_every_second(self):
        self.login_member()
        response = self.client.get(f"/runs/{self.long.pk}/load/series.csv")
        assert response.streaming
        body = b"".join(response.streaming_content).decode()
        rows = list(csv.DictReader(io.StringIO(body)))
        assert len(rows) == 10_000 and rows[-1]["second"] == "9999"
