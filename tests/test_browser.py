"""The live pages in a real browser: login, launch, lanes, charts, reload mid-run, escaping."""

from __future__ import annotations

import re
import time

import pytest

from tests.browser import launch, login_admin, require_chromium
from tests.factories import write_suite
from tests.servers import ServeProcess

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    require_chromium()
    data = tmp_path_factory.mktemp("browser-data")
    process = ServeProcess(data).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def browser(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch(playwright)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def page(server, browser):
    # Playwright's wait_for_function evaluates its predicate in the page, which the CSP
    # forbids ('unsafe-eval'): these tests are about other things. The CSP has its test
    # (strict_page).
    context = browser.new_context(bypass_csp=True)
    page = context.new_page()
    page.set_default_timeout(30_000)
    login_admin(page, server)
    yield page
    context.close()


@pytest.fixture
def strict_page(server, browser):
    """A page of a browser context that enforces the CSP, as every browser does."""
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(30_000)
    login_admin(page, server)
    yield page
    context.close()


def test_launch_demo_watch_lanes_reload_and_finish(server, page):
    page.goto(f"{server.url}/suites/demo/")
    page.fill("input[name=workers]", "4")
    page.click("#run-button")
    page.wait_for_url(re.compile(r".*/runs/\d+/$"))
    # Lanes fill while the run goes.
    page.wait_for_function("document.querySelectorAll('.lane').length === 4")
    lanes = page.eval_on_selector_all(".lane", "els => els.map(e => e.dataset.worker)")
    assert sorted(lanes) == ["gw0", "gw1", "gw2", "gw3"]
    page.wait_for_function("Object.keys(window.ptdReceived).length >= 3")
    assert page.get_attribute("#run-status", "data-run-status") == "running"
    before = page.evaluate("Object.keys(window.ptdReceived).length")
    # Reload mid-run: the snapshot rebuilds the same state (at least what was shown).
    page.reload()
    page.wait_for_function(f"Object.keys(window.ptdReceived).length >= {before}")
    assert page.eval_on_selector_all(".lane", "els => els.length") == 4
    # The end: final status, metrics, and rendered plotly charts.
    page.wait_for_function(
        "['passed', 'failed'].includes(document.querySelector('#run-status').dataset.runStatus)",
        timeout=90_000,
    )
    page.wait_for_function("document.querySelector('[data-metric=speedup]').textContent !== '–'")
    speedup = float(page.text_content("[data-metric=speedup]"))
    assert speedup > 1.0
    assert page.locator("#gantt .main-svg").count() >= 1
    assert page.locator("#balance .main-svg").count() >= 1
    bars = page.evaluate(
        "document.getElementById('gantt').data.reduce((n, t) => n + t.x.length, 0)"
    )
    assert bars >= 40


def test_script_in_nodeid_renders_inert(server, page, tmp_path):
    suite_dir = write_suite(
        tmp_path / "xss",
        {
            "test_xss.py": (
                "import pytest\n\n"
                "@pytest.mark.parametrize('payload', ['<script>window.pwned=1</script>'])\n"
                "def test_evil(payload):\n"
                "    assert payload == 'safe', '<img src=x onerror=window.pwned=2>'\n"
            )
        },
    )
    # Register through the staff form, as a user would.
    page.goto(f"{server.url}/suites/new/")
    page.fill("input[name=suite-name]", "xss")
    page.fill("input[name=suite-path]", str(suite_dir))
    page.fill("input[name=config-workers]", "1")
    page.click("form.card button[type=submit]")
    page.wait_for_url(f"{server.url}/suites/xss/")
    page.click("#run-button")
    page.wait_for_url(re.compile(r".*/runs/\d+/$"))
    page.wait_for_function(
        "document.querySelector('#run-status').dataset.runStatus === 'failed'", timeout=60_000
    )
    page.wait_for_function("document.querySelectorAll('#failures pre').length === 1")
    assert page.evaluate("window.pwned") is None
    text = page.text_content("#failures")
    assert "<script>window.pwned=1</script>" in text
    assert "<img src=x onerror=window.pwned=2>" in text
    # Plotly renders some tags in labels: the Gantt's hover text carries them as entities.
    page.wait_for_function("(document.getElementById('gantt').data || []).length > 0")
    hover = page.evaluate("document.getElementById('gantt').data.flatMap((t) => t.text).join()")
    assert "&lt;script&gt;" in hover and "<script>" not in hover


BIG_RUNNING_RUN = """
from runs.models import Run, Suite, TestResult
suite, _ = Suite.objects.get_or_create(name="big-live", defaults={"path": "/tmp"})
run = Run.objects.create(suite=suite, status="running", workers=2, collected=3000,
                         config_snapshot={"workers": 2})
TestResult.objects.bulk_create(
    TestResult(run=run, nodeid=f"t.py::test_{i}", worker=f"gw{i % 2}",
               outcome={700: "failed", 701: "error"}.get(i, "passed"), start=1000 + i * 0.01,
               stop=1000 + i * 0.01 + 0.01, duration=0.01)
    for i in range(1500))
TestResult.objects.create(run=run, nodeid="broken.py", worker="-", outcome="error",
                          when="collect", longrepr="ImportError: no module named nope")
print(run.id)
"""


def test_a_big_running_run_shows_its_whole_timeline_in_bounded_bars(server, page):
    run_id = server.manage("shell", "-c", BIG_RUNNING_RUN).strip().splitlines()[-1]
    page.goto(f"{server.url}/runs/{run_id}/")
    # The snapshot comes in several messages; the timeline redraws every 2 s meanwhile.
    ends = (
        "(document.getElementById('gantt').data || [])"
        ".flatMap((t) => t.base.map((b, i) => b + t.x[i]))"
    )
    page.wait_for_function(f"Math.max(0, ...{ends}) >= 14.9")  # first test to latest one
    traces = page.evaluate(
        "document.getElementById('gantt').data.map((t) => "
        "({name: t.name, bars: t.x.length, text: t.text[0]}))"
    )
    assert sum(t["bars"] for t in traces) <= 600  # not 1,500 bars: slices of each worker
    assert {t["name"] for t in traces} == {"passed", "failed", "error"}  # failing slices show
    assert all(" tests" in t["text"] for t in traces)
    # Counted as the server counts them (an error is not a failure: the CLI and API say so).
    progress = page.text_content("#progress-text")
    # A module that failed to import counts as done and as one more than was collected.
    assert "1501/3001 done · 1498 passed · 1 failed · 2 errors · 0 skipped" in progress


def test_new_token_copies_and_revoking_asks_first(server, page):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    page.goto(f"{server.url}/tokens/")
    page.fill("input[name=name]", "browser-ci")
    page.click("text=Create token")
    token = page.text_content("#new-token").strip()
    page.click("#copy-token")
    page.wait_for_function("document.getElementById('copy-token').textContent === 'Copied'")
    assert page.evaluate("navigator.clipboard.readText()") == token
    questions = []

    def answer(dialog, accept):
        questions.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()

    page.evaluate("window.ptdSamePage = true")
    page.once("dialog", lambda d: answer(d, False))
    page.locator("tr", has_text="browser-ci").locator("button", has_text="Revoke").click()
    assert "Revoke the token browser-ci?" in questions[0]
    assert page.evaluate("window.ptdSamePage === true")  # no submit, no new page
    assert "browser-ci" in page.request.get(f"{server.url}/tokens/").text()
    page.once("dialog", lambda d: answer(d, True))
    with page.expect_navigation():
        page.locator("tr", has_text="browser-ci").locator("button", has_text="Revoke").click()
    assert page.locator("tr", has_text="browser-ci").count() == 0
    assert "Token browser-ci revoked." in page.text_content(".messages")


def test_the_runs_list_follows_a_run_launched_elsewhere(server, page, tmp_path):
    import requests

    suite = write_suite(
        tmp_path / "slow-enough", {"test_wait.py": "import time\ndef test_wait(): time.sleep(3)\n"}
    )
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {server.create_token(name='list-refresh')}"
    made = api.post(f"{server.url}/api/suites", json={"name": "slow-enough", "path": str(suite)})
    assert made.status_code == 201, made.text
    made = api.post(f"{server.url}/api/runs", json={"suite": "slow-enough", "workers": 1})
    assert made.status_code == 201, made.text
    run_id = made.json()["id"]
    page.goto(f"{server.url}/runs/")
    row = page.locator("table.runs tr", has_text=f"#{run_id}")
    assert row.get_attribute("data-active") is not None  # queued or running when the page came
    page.evaluate("window.ptdSamePage = true")
    # No reload: the row's status turns final by itself (the list polls while a run is active).
    row.locator(".status-passed").wait_for(timeout=90_000)
    assert page.evaluate("window.ptdSamePage === true")
    assert row.get_attribute("data-active") is None


FINISHED_RUNS = """
from django.utils import timezone
from runs.models import Run, Suite, TestResult, WorkerStat
suite, _ = Suite.objects.get_or_create(name="csp-suite", defaults={"path": "/tmp"})
for n in range(2):
    run = Run.objects.create(
        suite=suite, status="passed", workers=2, config_snapshot={"workers": 2},
        started_at=timezone.now(), finished_at=timezone.now(), wall_seconds=2.0,
        serial_seconds=3.0, speedup=1.5, efficiency=0.75, balance=1.1, flakiness_rate=0.0,
        tests_total=4, tests_passed=4)
    TestResult.objects.bulk_create(
        TestResult(run=run, nodeid=f"t.py::test_{i}", worker=f"gw{i % 2}", outcome="passed",
                   start=1000 + i, stop=1000.5 + i, duration=0.5)
        for i in range(4))
    for w in ("gw0", "gw1"):
        WorkerStat.objects.create(run=run, worker=w, tests=2, busy_seconds=1.0)
print(run.id)
"""


def test_pages_pass_their_content_security_policy_and_plotly_draws(server, strict_page):
    page = strict_page
    """No inline script, handler or style for the CSP to block, and plotly still draws."""
    run_id = server.manage("shell", "-c", FINISHED_RUNS).strip().splitlines()[-1]
    blocked, errors = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    # Registered before any page script: a violation is reported as an event too.
    page.add_init_script(
        "window.ptdBlocked = [];"
        "document.addEventListener('securitypolicyviolation', (e) =>"
        " window.ptdBlocked.push(e.violatedDirective + ' ' + e.blockedURI + ' ' + e.sourceFile"
        " + ':' + e.lineNumber + ':' + e.columnNumber + ' ' + location.pathname));"
    )
    pages = {  # page -> what its scripts must have drawn: plotly charts (their SVG), ...
        f"/runs/{run_id}/": ["#gantt", "#balance"],
        "/trends/?suite=csp-suite": ["#chart-speedup", "#chart-wall"],
        "/suites/csp-suite/tests/t.py::test_1": ["#duration-chart"],
        "/suites/csp-suite/report/": [],
        "/suites/csp-suite/": [],
        "/admin/": [],
        "/api/docs": [".swagger-ui .info"],  # Swagger UI drew the schema
    }
    for path, charts in pages.items():
        response = page.goto(f"{server.url}{path}")
        assert response.status == 200, path
        policy = response.header_value("content-security-policy")
        assert "script-src 'self'" in policy and "style-src 'self'" in policy
        for drawn in charts:
            selector = drawn if " " in drawn else f"{drawn} .main-svg"
            page.wait_for_selector(selector, state="attached")
        blocked += page.evaluate("window.ptdBlocked")
    assert blocked == [], sorted(set(blocked))
    assert not [e for e in errors if "Content Security Policy" in e], errors


def test_the_live_page_resyncs_after_a_lost_message(server, browser, tmp_path):
    """A results message lost on its way (as a full channel-layer queue drops one): the page
    sees the gap in the numbers, asks for a snapshot, and ends showing every result."""
    import json

    import requests

    suite = write_suite(
        tmp_path / "lossy",
        {
            # The tests wait for the page's first snapshot (the gate file), so results come
            # after it however slow this machine is to open the page.
            "test_steps.py": "import pathlib, time, pytest\n\n"
            "GATE = pathlib.Path(__file__).with_name('gate')\n\n"
            "@pytest.mark.parametrize('i', range(12))\n"
            "def test_step(i):\n"
            "    deadline = time.monotonic() + 60\n"
            "    while not GATE.exists() and time.monotonic() < deadline:\n"
            "        time.sleep(0.02)\n"
            "    time.sleep(0.1)\n"
        },
    )
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {server.create_token(name='lossy')}"
    made = api.post(f"{server.url}/api/suites", json={"name": "lossy", "path": str(suite)})
    assert made.status_code == 201, made.text
    dropped = []
    snapshot_seq = []

    def route(ws):
        upstream = ws.connect_to_server()

        def from_server(message):
            data = json.loads(message)
            if data.get("type") == "snapshot":
                snapshot_seq.append(data.get("seq", 0))
            # A message the snapshot already holds (published while it was read) is one the
            # page rightly ignores: lose the first one numbered after the snapshot.
            newer = bool(snapshot_seq) and data.get("seq", 0) > snapshot_seq[-1]
            if data.get("type") == "results" and newer and not dropped:
                dropped.append(data["seq"])  # never reaches the page
                return
            ws.send(message)

        upstream.on_message(from_server)

    context = browser.new_context(bypass_csp=True)  # its own: the route stays with it
    page = context.new_page()
    page.set_default_timeout(30_000)
    login_admin(page, server)
    page.route_web_socket(re.compile(r".*/ws/runs/\d+/$"), route)
    try:
        made = api.post(f"{server.url}/api/runs", json={"suite": "lossy", "workers": 1})
        assert made.status_code == 201, made.text
        run_id = made.json()["id"]
        page.goto(f"{server.url}/runs/{run_id}/")
        deadline = time.monotonic() + 30
        while not snapshot_seq and time.monotonic() < deadline:
            page.wait_for_timeout(50)  # lets the route see the socket's messages
        assert snapshot_seq, "the page got no snapshot"
        (suite / "gate").touch()
        page.wait_for_function(
            "['passed', 'failed'].includes(document.querySelector('#run-status')"
            ".dataset.runStatus)",
            timeout=90_000,
        )
        assert dropped, "no numbered results message came"
        page.wait_for_function("Object.keys(window.ptdReceived).length === 12", timeout=10_000)
        assert "12/12 done" in page.text_content("#progress-text")
        assert page.evaluate("window.ptdResyncs")[0].startswith("gap")
    finally:
        (suite / "gate").touch()  # whatever failed, the run's tests must not wait 60 s each
        context.close()
