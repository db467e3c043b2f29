"""A finished short load run's HTML report in a real chromium: its users are the run's (its one
stored second came after the users stopped), its one second is drawn (markers, not an empty
line), and the users axis counts whole users."""

from __future__ import annotations

import pytest

from runner.loadstats import Entry
from runs.load.aggregate import LoadAggregator
from runs.models import Run
from tests.base import BaseTestCase
from tests.browser import launch, require_chromium
from tests.factories import make_run

pytestmark = pytest.mark.browser
T0 = 1_800_000_000.0


class ShortRunReportTests(BaseTestCase):
    def test_one_second_after_the_users_stopped_shows_the_runs_users_and_a_point(self):
        require_chromium()
        run = make_run(self.suite, status=Run.Status.PASSED)
        run.config_snapshot.update(mode="load", users=3)
        run.save(update_fields=["config_snapshot"])
        aggregator = LoadAggregator.for_run(run)
        done = Entry()
        for ms in (10.0, 12.0, 30.0):
            done.add(ms)
        tick = {"type": "load_tick", "time": T0 + 1, "process": "p0", "second": 0, "users": 0}
        aggregator.feed(
            [
                {"type": "load_start", "time": T0, "users": 3, "processes": 1},
                {**tick, "tests": {"t.py::test_a": done.to_dict()}},
                {"type": "load_stop", "time": T0 + 0.8, "reason": "iterations"},
            ]
        )
        aggregator.finish()
        self.login_member()
        html = self.client.get(f"/runs/{run.pk}/load/report.html").content.decode()

        from playwright.sync_api import sync_playwright

        with sync_playwright() as playwright:
            browser = launch(playwright)
            try:
                page = browser.new_page()
                errors = []
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.set_content(html)
                page.wait_for_selector("#chart-load-rps .scatterlayer .trace .points path")
                page.wait_for_selector("#chart-load-latency .scatterlayer .trace .points path")
                assert page.text_content("[data-load=users]") == "3"
                ticks = page.eval_on_selector_all(
                    "#chart-load-rps g.y2tick text",
                    "nodes => nodes.map(n => n.textContent)",
                )
                assert len(ticks) > 1 and all(t.isdigit() for t in ticks), ticks
                assert not errors, errors
            finally:
                browser.close()
