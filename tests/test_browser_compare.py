"""The compare page in a real browser: two real runs of a suite whose tests changed between
them, compared from the run page's "compare with…" form, under the pages' CSP."""

from __future__ import annotations

import time

import pytest

from tests.browser import launch, login_admin, require_chromium
from tests.factories import write_suite
from tests.servers import ServeProcess

pytestmark = pytest.mark.browser

BEFORE = {
    "test_app.py": (
        "import time\n"
        "def test_steady(): pass\n"
        "def test_breaks(): pass\n"
        "def test_mended(): assert False, 'not yet'\n"
        "def test_slows(): time.sleep(0.1)\n"
        "def test_dropped(): pass\n"
    )
}
AFTER = {
    "test_app.py": (
        "import time\n"
        "def test_steady(): pass\n"
        "def test_breaks(): assert 1 == 2\n"
        "def test_mended(): pass\n"
        "def test_slows(): time.sleep(0.8)\n"
        "def test_new(): pass\n"
    )
}


def run_to_end(api, server, suite: str) -> int:
    made = api.post(f"{server.url}/api/runs", json={"suite": suite, "workers": 1})
    assert made.status_code == 201, made.text
    run_id = made.json()["id"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        run = api.get(f"{server.url}/api/runs/{run_id}").json()
        if run["status"] not in ("queued", "running"):
            assert run["status"] == "failed", run
            return run_id
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} still {run['status']} after 120 s")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    require_chromium()
    process = ServeProcess(tmp_path_factory.mktemp("compare-data")).start()
    yield process
    process.stop()


def test_two_runs_with_changed_tests_compare_from_the_run_page(server, tmp_path):
    import requests
    from playwright.sync_api import sync_playwright

    suite = write_suite(tmp_path / "changing", BEFORE)
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {server.create_token(name='compare')}"
    made = api.post(f"{server.url}/api/suites", json={"name": "changing", "path": str(suite)})
    assert made.status_code == 201, made.text
    first = run_to_end(api, server, "changing")
    write_suite(suite, AFTER)
    second = run_to_end(api, server, "changing")

    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_context().new_page()  # the CSP enforced
        page.set_default_timeout(30_000)
        blocked = []
        page.on("console", lambda m: blocked.append(m.text) if "Content Security" in m.text else 0)
        login_admin(page, server)
        page.goto(f"{server.url}/runs/{second}/")
        chosen = page.locator("#compare-form select[name=with]")
        assert chosen.input_value() == str(first)  # the previous run like this one
        page.click("#compare-form button[type=submit]")
        page.wait_for_url(f"{server.url}/runs/{first}/compare/{second}/")

        def group(key):
            return page.locator(f"table[data-group={key}] td.mono").all_inner_texts()

        assert group("new_failures") == ["test_app.py::test_breaks"]
        assert group("fixed") == ["test_app.py::test_mended"]
        assert group("added") == ["test_app.py::test_new"]
        assert group("removed") == ["test_app.py::test_dropped"]
        assert group("slower") == ["test_app.py::test_slows"]
        assert page.locator("#still_failing").inner_text().endswith("none")
        assert page.locator("[data-count=new_flaky]").inner_text() == "0"
        assert page.locator("#workers-side tbody tr").count() == 2  # gw0 and the balance row
        page.click("#swap")
        page.wait_for_url(f"{server.url}/runs/{second}/compare/{first}/")
        assert group("new_failures") == ["test_app.py::test_mended"]
        assert group("faster") == ["test_app.py::test_slows"]
        browser.close()
    assert blocked == []
