"""The live page of a load run in a real chromium, the CSP enforced: the stats table and the
charts fill while the load goes, come back whole after a reload mid-run, and stay once it
has finished."""

from __future__ import annotations

import pytest
import requests

from runner import options
from tests.browser import launch, login_admin, require_chromium
from tests.load_suite import write_load_suite
from tests.servers import ServeProcess

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif("mode" not in options.NAMES, reason="needs the load engine (#16)"),
]
ITEM = "test_service.py::test_item"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    require_chromium()
    process = ServeProcess(tmp_path_factory.mktemp("load-browser-data")).start()
    yield process
    process.stop()


def test_live_load_page_mid_run_after_reload_and_finished(server, tmp_path):
    token = server.create_token()
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {token}"
    path = write_load_suite(tmp_path / "service")
    created = api.post(
        f"{server.url}/api/suites",
        json={"name": "service", "path": str(path), "env": {"RAW_TIMINGS": str(tmp_path / "raw")}},
        timeout=30,
    )
    assert created.status_code == 201, created.text

    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_context().new_page()  # the CSP enforced, as in every browser
        page.set_default_timeout(30_000)
        violations = []
        page.on("console", lambda m: violations.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: violations.append(str(e)))
        login_admin(page, server)
        # Launched once the browser is up, so its start-up does not eat the run's duration.
        launched = api.post(
            f"{server.url}/api/runs",
            json={
                "suite": "service",
                "mode": "load",
                "users": 4,
                "spawn_rate": 100,
                "duration": 15,
                "workers": 2,
                "keyword": "test_item",
                "thresholds": ["p95<5s"],
            },
            timeout=30,
        )
        assert launched.status_code == 201, launched.text
        run_url = server.url + launched.json()["url"]

        def shows_the_load():
            page.wait_for_selector(f"#stats-tests tbody td.mono:text-is('{ITEM}')")
            page.wait_for_selector("#stats-endpoints tbody td.mono:text-is('/items/{id}')")
            page.wait_for_selector("#chart-load-rps .main-svg .scatterlayer .trace")
            page.wait_for_selector("#chart-load-latency .main-svg .scatterlayer .trace")
            page.wait_for_selector("#load-thresholds li[data-expr='p95<5s'][data-passed='true']")
            return int(page.text_content("[data-load=iterations]"))

        page.goto(run_url)
        seen = shows_the_load()
        assert page.get_attribute("#run-status", "data-run-status") == "running"
        assert seen > 0
        page.reload()  # mid-run: the snapshot brings everything back
        assert shows_the_load() >= seen
        assert page.get_attribute("#run-status", "data-run-status") == "running"
        page.wait_for_selector("#run-status[data-run-status=passed]", timeout=60_000)
        final = api.get(f"{run_url.replace('/runs/', '/api/runs/').rstrip('/')}", timeout=30)
        iterations = final.json()["load"]["iterations"]
        page.wait_for_selector(f"[data-load=iterations]:text-is('{iterations}')")
        # Its measured length (start to stop), not its stored seconds plus the final flush's.
        measured = final.json()["load"]["duration_seconds"]
        page.reload()  # a finished load run keeps its charts
        assert shows_the_load() == iterations
        assert abs(int(page.text_content("[data-load=duration]")) - measured) <= 0.5 + 1e-6
        # Sortable: a click on "p95" sorts the endpoints table by it (one row: still there).
        page.click("#stats-tests th[data-key=p95_ms]")
        assert page.get_attribute("#stats-tests th[data-key=p95_ms]", "data-sorted") == "desc"
        browser.close()
    assert not violations, violations
