"""The Scaling view and the run page's time breakdown in a real browser, under the CSP."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

from tests.browser import launch, login_admin, require_chromium
from tests.factories import write_suite
from tests.servers import ServeProcess

pytestmark = pytest.mark.browser

SUITE = {
    "conftest.py": "import time\n\ntime.sleep(0.5)\n",
    **{f"test_b{i}.py": "import time\n\ndef test_x(): time.sleep(0.3)\n" for i in range(4)},
    "test_long.py": "import time\n\ndef test_long(): time.sleep(4.0)\n",
}


def api(server, token, path, body=None):
    request = urllib.request.Request(
        f"{server.url}/api/{path}",
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="GET" if body is None else "POST",
    )
    with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 - our server
        return json.loads(answer.read())


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    require_chromium()
    process = ServeProcess(tmp_path_factory.mktemp("insight-data")).start()
    yield process
    process.stop()


def test_sweep_from_the_scaling_page_then_its_curve_and_a_run_breakdown(server, tmp_path):
    from playwright.sync_api import sync_playwright

    token = server.create_token()
    path = write_suite(tmp_path / "sweepme", SUITE)
    api(server, token, "suites", {"name": "sweepme", "path": str(path), "workers": 2})
    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page()  # the CSP enforced, as in every browser
        page.set_default_timeout(30_000)
        refused: list[str] = []
        page.on("console", lambda m: refused.append(m.text) if "Content Security" in m.text else 0)
        login_admin(page, server)
        page.goto(f"{server.url}/suites/sweepme/")
        page.click("#scaling-link")
        page.wait_for_selector("#sweep-form")
        page.fill("#sweep-workers", "2, 1")
        page.click("#sweep-button")
        page.wait_for_selector(".messages li")
        assert "Sweep queued: 2 runs" in page.inner_text(".messages li")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # bounded: the two runs, one after the other
            runs = api(server, token, "runs?suite=sweepme")["items"]
            if len(runs) == 2 and all(r["status"] not in ("queued", "running") for r in runs):
                break
            time.sleep(0.5)
        assert [r["status"] for r in runs] == ["passed", "passed"], runs
        page.reload()
        page.wait_for_selector("#scaling-chart[data-drawn='1'] .main-svg")
        legend = page.text_content("#scaling-chart .legend")
        for name in ("ideal", "0.75", "Amdahl fit", "measured speedup"):
            assert name in legend
        assert page.inner_text("#recommended-workers") in ("1", "2")
        assert "within 10 % of the best wall" in page.inner_text("#recommendation")
        assert page.locator("#scaling-points tbody tr").count() == 2
        page.click("#scaling-points tbody tr:last-child td:last-child a")
        page.wait_for_selector("#time-breakdown svg.breakdown-bar")
        assert "step 2 of 2" in page.inner_text("dl.facts")
        link = page.get_attribute("#sweep-scaling-link", "href")
        assert link.startswith("/suites/sweepme/scaling/")
        parts = page.eval_on_selector_all(
            "#time-breakdown svg.breakdown-bar g", "gs => gs.map(g => g.dataset.part)"
        )
        assert {"startup", "busy", "idle"} <= set(parts)
        # test_long holds 4 s, the rest 1.2 s: the idle workers are marked and explained.
        assert page.locator("#time-breakdown g[data-bad='1']").count() >= 1
        assert "test_long" in page.inner_text("#breakdown-findings")
        assert not refused, refused
        browser.close()
