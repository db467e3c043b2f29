"""Runs across machines, end to end: a served dashboard, a real Redis broker, three real
Celery agents (separate processes, each with its own copy of the suite, mapped with
--path-map), runs through serve's dispatcher. Heartbeats every 0.3 s, an agent lost after
3 s of silence (a loaded machine delays heartbeats), a run waits 2 s for agents (the
defaults are 5, 15 and 300 s)."""

from __future__ import annotations

import collections
import re

import pytest

from tests.fleet import Fleet, drop_git, git_checkout, needs_broker

pytestmark = [
    pytest.mark.services,
    needs_broker,
]
NOT_SLOW = "not slow"
WAIT = 30_000  # ms: an agent starting, a poll, a loss detected, on a loaded machine


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    with Fleet(tmp_path_factory.mktemp("fleet")).serving(machines=3) as fleet:
        yield fleet


def all_idle(fleet: Fleet, count: int) -> None:
    fleet.wait(lambda: len(fleet.idle()) >= count, 20, f"{count} idle agents")


def finals(results: list[dict]) -> dict[str, list[dict]]:
    by_test = collections.defaultdict(list)
    for r in results:
        if r["outcome"] not in ("crashed", "rerun"):
            by_test[r["nodeid"]].append(r)
    return by_test


def test_a_run_over_three_machines_reports_every_outcome_once(fleet):
    run = fleet.wait_run(fleet.launch(machines=3, workers=2, keyword=NOT_SLOW))
    assert run["status"] == "failed", run["message"]
    assert run["tests"] == {
        "total": 23, "passed": 19, "failed": 1, "skipped": 2, "errors": 1, "flaky": 0,
    }  # fmt: skip
    assert run["workers"] == 6 and run["engine"] == "fork"
    assert run["efficiency"] == pytest.approx(run["speedup"] / 6)
    results = fleet.results(run["id"])
    assert all(len(attempts) == 1 for attempts in finals(results).values())
    assert len(finals(results)) == 23
    pattern = re.compile(rf"^m[012]-{fleet.tag}/gw[01]$")
    assert all(pattern.match(r["worker"]) for r in results), {r["worker"] for r in results}
    # (How the tests spread depends on when each machine is up: a machine that starts late
    # may find the queue empty, or the run over before its shard starts. The killed-machine
    # test below needs all three busy.)
    assert [m["state"] for m in run["machines"]] == ["done"] * 3
    started = {m["agent"]: int(m["started_at"] is not None) for m in run["machines"]}
    served = {a["name"]: a["runs_served"] for a in fleet.get("/api/agents")}
    assert sum(started.values()) >= 1 and all(served[a] >= n for a, n in started.items())


def test_loadfile_keeps_a_file_on_one_worker_across_machines(fleet):
    all_idle(fleet, 3)
    run = fleet.wait_run(fleet.launch(machines=3, workers=2, dist="loadfile", keyword=NOT_SLOW))
    assert run["tests"]["total"] == 23
    workers = collections.defaultdict(set)
    for r in fleet.results(run["id"]):
        workers[r["nodeid"].split("::")[0]].add(r["worker"])
    assert all(len(w) == 1 for w in workers.values()), dict(workers)


def test_a_machine_that_collected_other_tests_fails_the_run(fleet):
    all_idle(fleet, 3)
    extra = fleet.copies[f"m2-{fleet.tag}"] / "tests" / "test_extra.py"
    extra.write_text("def test_only_here():\n    pass\n")
    try:
        run = fleet.wait_run(fleet.launch(machines=3, workers=1, keyword=NOT_SLOW))
    finally:
        extra.unlink()
    assert run["status"] == "error"
    assert "different tests were collected" in run["message"]
    assert "test_only_here" in run["message"]


def test_a_machine_at_another_commit_refuses_its_shard(fleet):
    all_idle(fleet, 3)
    copy = fleet.copies[f"m1-{fleet.tag}"]
    git_checkout(copy)
    try:
        run = fleet.wait_run(fleet.launch(machines=3, workers=1, commit="0" * 40))
    finally:
        drop_git(copy)
    assert run["status"] == "error"
    assert f"machine m1-{fleet.tag}" in run["message"] and "refusing" in run["message"]


def test_no_agent_online_waits_then_fails_clearly(fleet):
    run_id = fleet.launch(machines=2, queue="nobody")
    fleet.wait(
        lambda: fleet.get(f"/api/runs/{run_id}")["message"] == "waiting for agents (0 of 2)",
        10,
        "the waiting message",
    )
    run = fleet.wait_run(run_id)
    assert run["status"] == "error"
    assert "No agent of queue 'nobody'" in run["message"] and "(0 of 2)" in run["message"]


def test_cancel_stops_every_shard_on_every_machine(fleet):
    all_idle(fleet, 3)
    run_id = fleet.launch(machines=3, workers=2, keyword="slow")
    fleet.wait(lambda: len(fleet.machines_busy()) == 3, 20, "pytest on every machine")
    fleet.post(f"/api/runs/{run_id}/cancel", {})
    run = fleet.wait_run(run_id)
    assert run["status"] == "cancelled"
    fleet.wait(
        lambda: fleet.get(f"/api/runs/{run_id}")["wall_seconds"] is not None, 10, "its figures"
    )
    fleet.wait(lambda: fleet.processes_in_copies() == [], 15, "every shard's processes to end")
    fleet.wait(
        lambda: {m["state"] for m in fleet.get(f"/api/runs/{run_id}")["machines"]} == {"cancelled"},
        10,
        "the shards to be cancelled",
    )


def test_a_machine_killed_mid_run_loses_nothing(fleet):
    all_idle(fleet, 3)
    for copy in fleet.copies.values():
        for mark in (copy / "tests").glob("running-*"):  # left by the cancelled run
            mark.unlink()
    run_id = fleet.launch(machines=3, workers=1, keyword="slow or test_pass")

    def busy_machine():  # one running a slow test now (the tests mark it in their copy)
        return next(
            (n for n, p in fleet.copies.items() if p.exists() and any(p.glob("tests/running-*"))),
            None,
        )

    victim = fleet.wait(busy_machine, 30, "a machine running a slow test")
    fleet.kill_agent(victim)
    try:
        run = fleet.wait_run(run_id, timeout=20)
    except AssertionError:
        print(fleet.get(f"/api/runs/{run_id}"))
        print([(r["nodeid"], r["worker"], r["outcome"]) for r in fleet.results(run_id)])
        print(fleet.get("/api/agents"))
        print("".join(fleet.server.output[-80:]))
        raise
    assert run["status"] == "passed", run["message"]
    assert run["tests"]["total"] == 18 and run["tests"]["passed"] == 18
    assert run["tests"]["flaky"] == 0  # a lost machine is not the test's flakiness
    states = {m["agent"]: m["state"] for m in run["machines"]}
    assert states[victim] == "lost"
    results = fleet.results(run_id)
    assert all(len(attempts) == 1 for attempts in finals(results).values())
    assert len(finals(results)) == 18
    crashed = [r for r in results if r["outcome"] == "crashed"]
    assert crashed and all(r["worker"].startswith(victim + "/") for r in crashed)
    for r in crashed:
        (rerun,) = finals(results)[r["nodeid"]]
        assert not rerun["worker"].startswith(victim + "/") and "lost" in r["longrepr"]


def test_ptd_run_spreads_a_run_over_machines_from_ci(fleet):
    import subprocess
    import sys

    from tests.servers import ROOT

    all_idle(fleet, 2)
    env = {**__import__("os").environ, "PTD_SERVER": fleet.server.url, "PTD_TOKEN": fleet.token}
    out = subprocess.run(
        [sys.executable, "-m", "runner.client.cli", "run", "--suite", "mix", "--machines", "2",
         "--workers", "1", "-k", "test_files", "--wait"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    run = fleet.get("/api/runs?limit=1")["items"][0]
    assert run["status"] == "passed" and run["tests"]["total"] == 6
    assert len(run["machines"]) == 2


@pytest.mark.browser
def test_the_live_page_groups_lanes_by_machine_and_shows_their_state(fleet):
    from playwright.sync_api import expect, sync_playwright

    from tests.browser import launch, login_admin, require_chromium

    require_chromium()
    all_idle(fleet, 2)
    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            page = browser.new_context().new_page()  # the pages' CSP enforced
            page.set_default_timeout(30_000)
            login_admin(page, fleet.server)
            run_id = fleet.launch(machines=2, workers=2, keyword="test_pass or test_files")
            page.goto(f"{fleet.server.url}/runs/{run_id}/")
            expect(page.locator("#run-status")).to_have_text("passed")
            rows = page.locator("#machines tbody tr")
            expect(rows).to_have_count(2)
            for i in range(2):
                expect(rows.nth(i).locator(".status")).to_have_text("done")
            per_worker = fleet.get(f"/api/runs/{run_id}")["per_worker"]
            ran = {w["id"].split("/")[0] for w in per_worker}  # a lane per worker that came up
            groups = page.locator("#lanes .lane.machine-start")
            expect(groups).to_have_count(len(ran))
            assert {groups.nth(i).get_attribute("data-machine") for i in range(len(ran))} == ran
        finally:
            browser.close()


@pytest.mark.browser
def test_the_agents_page_follows_agents_without_a_reload(fleet):
    """A new agent appears, runs a run, goes idle, is lost: all on one load of the page."""
    from playwright.sync_api import expect, sync_playwright

    from tests.browser import launch, login_admin, require_chromium

    require_chromium()
    name = f"m3-{fleet.tag}"
    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            page = browser.new_context().new_page()  # the pages' CSP enforced
            page.set_default_timeout(WAIT)
            errors = []  # a script refused by the CSP, or failing
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: m.type == "error" and errors.append(m.text))
            login_admin(page, fleet.server)
            page.goto(f"{fleet.server.url}/agents/")
            page.evaluate("window.ptdSameLoad = true")  # gone, were the page loaded again
            rows = page.locator("table.agents tbody tr")
            expect(rows).to_have_count(len(fleet.get("/api/agents")), timeout=WAIT)
            fleet.start_agent(name, workers=1, queue="solo")  # its own queue: the run below
            row = page.locator(f'table.agents tr[data-agent="{name}"]')
            expect(row.locator(".state")).to_have_text("idle", timeout=WAIT)
            expect(row.locator(".beat")).to_have_text(re.compile(r"^\d+ s ago$"), timeout=WAIT)
            run_id = fleet.launch(machines=1, queue="solo", workers=1, keyword="slow")  # 6 s
            expect(row.locator(".state")).to_have_text(f"running run #{run_id}", timeout=WAIT)
            href = row.locator(".state a").get_attribute("href")
            assert href == f"/runs/{run_id}/"
            fleet.post(f"/api/runs/{run_id}/cancel", {})
            assert fleet.wait_run(run_id)["status"] == "cancelled"
            expect(row.locator(".state")).to_have_text("idle", timeout=WAIT)
            fleet.kill_agent(name)
            odd = "<img src=x onerror=window.ptdPwned=1>"  # an agent's words stay text
            fleet.post("/api/agents/heartbeat", {"name": f"odd-{fleet.tag}", "ptd": odd})
            warning = page.locator(f'tr[data-agent="odd-{fleet.tag}"] .error')
            expect(warning).to_contain_text(f"PTD {odd} here", timeout=WAIT)
            expect(row.locator(".state")).to_have_text("lost", timeout=WAIT)
            expect(row.locator(".state .status")).to_have_class(
                re.compile("status-error"), timeout=WAIT
            )
            ago = int(row.locator(".beat").inner_text().split()[0])
            assert ago >= 3  # LOST_SECONDS: the age the page shows is the silence's
            assert page.evaluate("window.ptdSameLoad") is True
            assert page.evaluate("window.ptdPwned") is None
            assert errors == []
        finally:
            browser.close()
