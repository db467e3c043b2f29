"""Issue #17 item 7 (and 4's page part) in a real browser: the live run page agrees with itself.

Mid-run, the progress line, the lanes, the balance chart and the timeline show the same number
of tests (one state, drawn in frames); the wall and work cards count "so far"; a 1 ms failure
is a bar one can see; count ticks are whole numbers; hovers are rounded; a failure shows what
it printed, as text; long suite names stay inside headings and dropdowns.
"""

from __future__ import annotations

import re

import pytest

from tests.browser import launch, login_admin, require_chromium
from tests.factories import write_suite
from tests.servers import ServeProcess

pytestmark = pytest.mark.browser

LONG_NAME = "a-suite-whose-name-is-longer-than-any-heading-or-dropdown-was-made-for-" + "x" * 28
LIVE_SUITE = """\
import time
import pytest


@pytest.mark.parametrize("i", range(36))
def test_step(i):
    time.sleep(0.6 if i % 12 == 0 else 0.12)


def test_quick_failure():
    print("<script>window.pwned = 1</script>")
    assert False
"""
# What the page shows, read in one go (one task of the page: no frame can come in between).
READ_FRAME = """() => {
  const progress = document.getElementById('progress-text').textContent;
  const done = Number(/^(\\d+)\\//.exec(progress)[1]);
  const gantt = document.getElementById('gantt').data || [];
  const balance = document.getElementById('balance').data || [];
  const lanes = [...document.querySelectorAll('.lane span')]
    .map((s) => Number(/(\\d+) tests?/.exec(s.textContent)[1]));
  const lastFinished = [...document.querySelectorAll('.lane div')].map((d) => d.textContent);
  return {
    done,
    frame: Number(document.getElementById('run-app').dataset.frameDone || -1),
    bars: gantt.reduce((n, t) => n + t.x.length, 0),
    balance: balance.length ? balance[1].y.reduce((a, b) => a + b, 0) : 0,
    lanes: lanes.reduce((a, b) => a + b, 0),
    lastFinished,
    status: document.getElementById('run-status').dataset.runStatus,
    wallLive: document.querySelector('[data-metric=wall_seconds]').dataset.live || '',
  };
}"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    require_chromium()
    process = ServeProcess(tmp_path_factory.mktemp("live-data")).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch(playwright)
        # wait_for_function evaluates strings, which the CSP forbids: bypassed here only
        # (test_browser.py's strict_page checks the CSP itself).
        context = browser.new_context(bypass_csp=True, viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.set_default_timeout(30_000)
        login_admin(page, server)
        yield page
        browser.close()


@pytest.fixture(scope="module")
def api(server):
    import requests

    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {server.create_token(name='live')}"
    return session


def test_progress_lanes_balance_and_timeline_agree_while_the_run_goes(server, page, api, tmp_path):
    path = write_suite(tmp_path / "live", {"test_live.py": LIVE_SUITE})
    made = api.post(f"{server.url}/api/suites", json={"name": LONG_NAME, "path": str(path)})
    assert made.status_code == 201, made.text
    made = api.post(f"{server.url}/api/runs", json={"suite": LONG_NAME, "workers": 2})
    assert made.status_code == 201, made.text
    page.goto(f"{server.url}{made.json()['url']}")

    # Every frame while the run goes: the same count everywhere. Sampled each time a new
    # frame has come (a bounded wait), until the run ends.
    samples = []
    last = -1
    while True:
        page.wait_for_function(
            f"Number(document.getElementById('run-app').dataset.frameDone || -1) !== {last}"
            " || !['queued', 'running'].includes("
            "document.getElementById('run-status').dataset.runStatus)",
            timeout=60_000,
        )
        seen = page.evaluate(READ_FRAME)
        if seen["status"] != "running":
            break
        last = seen["frame"]
        if seen["done"]:
            samples.append(seen)
    mid = [s for s in samples if 0 < s["done"] < 37]
    assert mid, f"no frame caught mid-run: {samples}"
    for s in mid:
        assert s["done"] == s["frame"] == s["bars"] == s["balance"] == s["lanes"], s
        assert s["wallLive"] == "so far", s
        # What a lane names is the test its worker finished last, and says so.
        assert all(t == "" or t.startswith("last finished: ") for t in s["lastFinished"]), s

    page.wait_for_function(
        "['passed', 'failed'].includes(document.getElementById('run-status').dataset.runStatus)"
    )
    final = page.evaluate(READ_FRAME)
    assert final["done"] == final["bars"] == final["balance"] == 37 and final["wallLive"] == ""
    # Where the time went, computed as the run finished, shows without a reload.
    page.wait_for_function("document.querySelector('#time-breakdown svg.breakdown-bar') !== null")

    # The 1 ms failure is a visible bar, drawn over its neighbours.
    width = page.evaluate("""() => {
      const gd = document.getElementById('gantt');
      const i = gd.data.findIndex((t) => t.name === 'failed');
      const trace = gd.querySelectorAll('.barlayer .trace')[i];
      const paths = [...trace.querySelectorAll('path')];
      return Math.max(...paths.map((p) => p.getBoundingClientRect().width));
    }""")
    assert width >= 3
    names = page.evaluate("document.getElementById('gantt').data.map((t) => t.name)")
    assert names[-1] == "failed"
    # Slow passed tests are coloured by duration (a scale), not all one green.
    colors = page.evaluate(
        "document.getElementById('gantt').data.find((t) => t.name === 'passed').marker.color"
    )
    assert max(colors) >= 0.5 and min(colors) < 0.2

    # Count ticks are whole and distinct; hovers rounded.
    ticks = page.eval_on_selector_all("#balance .y2tick text", "els => els.map(e => e.textContent)")
    assert ticks and all(t.isdigit() for t in ticks) and len(set(ticks)) == len(ticks), ticks
    page.evaluate("Plotly.Fx.hover('balance', [{curveNumber: 0, pointNumber: 0}])")
    hover = page.text_content("#balance .hoverlayer")
    assert re.search(r"gw0: \d+\.\d\d s busy", hover), hover

    # The failure shows what it printed, as text.
    page.click("#failures details[data-stream=stdout] summary")
    printed = page.text_content("#failures details[data-stream=stdout] pre")
    assert printed == "<script>window.pwned = 1</script>\n"
    assert page.evaluate("window.pwned === undefined")
    assert page.locator("#failures script").count() == 0

    # A long suite name wraps in the heading and stays inside the runs list's dropdown.
    page.set_viewport_size({"width": 700, "height": 900})
    overflow = page.evaluate(
        "(() => { const h = document.querySelector('h1');"
        " return h.scrollWidth - document.querySelector('main').clientWidth; })()"
    )
    assert overflow <= 0
    page.goto(f"{server.url}/runs/")
    box = page.locator("select[name=suite]").bounding_box()
    assert box["x"] + box["width"] <= 700
    page.set_viewport_size({"width": 1280, "height": 900})
