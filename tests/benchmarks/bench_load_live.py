"""Issue #16 figure: how far the live load page trails the load.

A live `manage.py serve`, the load suite of tests/load_suite.py (a threaded service with a
0.2 s delay started by a session fixture), a load run of --users users for --duration seconds
on --processes processes, and its page open in chromium from the start. For every `load`
message the page received: its arrival minus the time of the newest engine tick it carries
(same machine, same clock), i.e. tick -> sink -> database -> websocket -> page. Also the run's
throughput against the ideal users / delay.

    python -m tests.benchmarks.bench_load_live [--users 100] [--duration 30] [--processes 2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import requests

from tests.benchmarks.common import environment_report
from tests.browser import launch, login_admin
from tests.load_suite import write_load_suite
from tests.servers import ServeProcess


def main() -> None:
    print(environment_report(), flush=True)
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--duration", type=int, default=30)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--delay", type=float, default=0.2)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="ptd-bench-load-live-"))
    suite = write_load_suite(base / "service")
    server = ServeProcess(base / "data").start()
    try:
        api = requests.Session()
        api.headers["Authorization"] = f"Bearer {server.create_token()}"
        env = {"RAW_TIMINGS": str(base / "raw.txt"), "SERVICE_DELAY": str(args.delay)}
        api.post(
            f"{server.url}/api/suites",
            json={"name": "service", "path": str(suite), "env": env},
            timeout=30,
        ).raise_for_status()
        from playwright.sync_api import sync_playwright

        with sync_playwright() as playwright:
            browser = launch(playwright)
            page = browser.new_context(bypass_csp=True).new_page()
            login_admin(page, server)
            created = api.post(
                f"{server.url}/api/runs",
                json={
                    "suite": "service",
                    "mode": "load",
                    "users": args.users,
                    "spawn_rate": 1000,
                    "duration": args.duration,
                    "workers": args.processes,
                    "keyword": "test_item",
                },
                timeout=30,
            )
            created.raise_for_status()
            page.goto(server.url + created.json()["url"])
            page.wait_for_selector(
                "#run-status:not([data-run-status=running]):not([data-run-status=queued])",
                timeout=(args.duration + 120) * 1000,
            )
            arrivals = page.evaluate("window.ptdLoadArrivals")
            browser.close()
        run = api.get(f"{server.url}/api/runs/{created.json()['id']}", timeout=30).json()
    finally:
        server.stop()
    delays = sorted(a["at"] / 1000 - a["ticked_at"] for a in arrivals if a.get("ticked_at"))
    load = run["load"]
    print(
        f"run {run['id']} {run['status']}: {args.users} users, {args.processes} processes, "
        f"{load['duration_seconds']:.1f} s, {load['iterations']} iterations, "
        f"{load['failures']} failures, {load['rps']:.1f}/s (ideal {args.users / args.delay:.0f}/s"
        f" = {load['rps'] / (args.users / args.delay):.2f}), p50 {load['p50_ms']} ms, "
        f"p95 {load['p95_ms']} ms"
    )
    if delays:
        p95 = delays[max(0, round(len(delays) * 0.95) - 1)]
        print(
            f"page delay after the engine's tick over {len(delays)} load messages: "
            f"median {statistics.median(delays):.3f} s, p95 {p95:.3f} s, max {delays[-1]:.3f} s"
        )
    print(f"warnings: {len(run['warnings'])}", *run["warnings"][:2], sep="\n")


if __name__ == "__main__":
    main()
