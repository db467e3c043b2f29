"""Issue #4 figures: the live dashboard under a 10,000-test run.

1. wall of a run launched from `serve` with its page open in chromium vs the same run headless
   (`run_suite`), alternating: target <= 1.10;
2. report -> browser latency of finished tests (TestReport.stop -> arrival in the page), p95:
   target <= 0.5 s; also report -> sink and sink -> browser;
3. the run page of that run (HTML + websocket snapshot) and the trends page over 1,000 runs
   (HTML + data JSON), each served in <= 300 ms.

    python -m tests.benchmarks.bench_live [--tests 10000] [--rounds 2] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from tests.benchmarks.common import ROOT, environment_report, make_suite, median
from tests.browser import launch, login_admin
from tests.servers import ServeProcess, isolated_env

SEED_RUNS = """
import random
from datetime import timedelta
from django.utils import timezone
from runs.models import Run, Suite, RunConfig
suite, _ = Suite.objects.get_or_create(name="trend-1000", defaults={"path": "/tmp"})
config = suite.default_config()
if config.pk is None:  # read-only: a suite without configurations gets an unsaved one
    config.save()
now = timezone.now()
rows = []
for i in range(1000):
    wall = random.uniform(10, 20)
    rows.append(Run(suite=suite, config=config, status="passed", workers=random.choice([1, 2, 4]),
        created_at=now - timedelta(hours=1000 - i), wall_seconds=wall, serial_seconds=wall * 2,
        speedup=2.0, efficiency=0.5, balance=random.uniform(1, 1.3), flakiness_rate=0.01,
        tests_total=100, tests_passed=99, branch=random.choice(["main", "dev"])))
Run.objects.bulk_create(rows)
print(Run.objects.filter(suite=suite).count())
"""


def headless(server, suite: Path, workers: int) -> dict:
    out = subprocess.run(
        [sys.executable, "manage.py", "run_suite", str(suite), "--workers", str(workers), "--json"],
        cwd=ROOT,
        env=server.env,
        capture_output=True,
        text=True,
        check=False,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def watched(server, page, suite_name: str, workers: int) -> tuple[dict, dict, list]:
    page.goto(f"{server.url}/suites/{suite_name}/")
    page.fill("input[name=workers]", str(workers))
    page.click("#run-button")
    page.wait_for_url("**/runs/*/")
    page.wait_for_function(
        "['passed', 'failed', 'error'].includes("
        "document.querySelector('#run-status').dataset.runStatus)",
        # Not Playwright's default (every animation frame): a 60 Hz probe keeps chromium
        # painting all along and costs the run's cores more than the page itself.
        polling=250,
        timeout=600_000,
    )
    run_id = int(page.url.rstrip("/").rsplit("/", 1)[1])
    received = page.evaluate("window.ptdReceived")
    batches = page.evaluate("window.ptdBatches")
    return run_id, received, batches


def results_of(server, session, run_id) -> list[dict]:
    items, offset = [], 0
    while True:
        page = session.get(
            f"{server.url}/api/runs/{run_id}/results?limit=1000&offset={offset}", timeout=60
        ).json()
        items += page["items"]
        offset += 1000
        if offset >= page["count"]:
            return items


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main() -> None:
    print(environment_report(), flush=True)
    parser = argparse.ArgumentParser()
    parser.add_argument("--tests", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    suite = Path(tempfile.mkdtemp(prefix="ptd-bench-live-")) / "uniform10k"
    make_suite(suite, "--profile", "uniform", "--tests", str(args.tests))
    data = Path(tempfile.mkdtemp(prefix="ptd-bench-live-data-"))
    # Served runs start cold too (no zygote): the comparison is about the open page alone.
    server = ServeProcess(data, env={**isolated_env(data), "PTD_WARM_START": "0"}).start()
    try:
        first = headless(server, suite, args.workers)  # registers the suite, records durations
        print(f"warm-up headless run: wall {first['wall_seconds']:.2f} s")
        heads, lives, latencies, page_lat = [], [], [], []
        with sync_playwright() as pw:
            browser = launch(pw)
            # wait_for_function evaluates strings: the pages' CSP forbids that, so bypass it.
            page = browser.new_context(bypass_csp=True).new_page()
            page.set_default_timeout(600_000)
            login_admin(page, server)
            session = requests.Session()
            for cookie in page.context.cookies():
                session.cookies.set(cookie["name"], cookie["value"])
            for i in range(args.rounds):
                head = headless(server, suite, args.workers)
                heads.append(head["wall_seconds"])
                run_id, received, batches = watched(server, page, suite.name, args.workers)
                detail = session.get(f"{server.url}/api/runs/{run_id}", timeout=60).json()
                lives.append(detail["wall_seconds"])
                stops = {r["nodeid"]: r["stop"] for r in results_of(server, session, run_id)}
                lat = [received[n] / 1000 - stop for n, stop in stops.items() if n in received]
                latencies += lat
                for b in batches:
                    page_lat.append(b["received"] / 1000 - b["sent_at"])
                print(
                    f"round {i + 1}: headless {heads[-1]:.2f} s, with page {lives[-1]:.2f} s, "
                    f"{len(lat)}/{len(stops)} tests seen live, p95 latency {pct(lat, 0.95):.3f} s"
                )
            # 3. page timings for the last watched run and for trends over 1,000 runs
            t = time.perf_counter()
            html = session.get(f"{server.url}/runs/{run_id}/", timeout=60)
            run_page = time.perf_counter() - t
            assert html.status_code == 200
            t = time.perf_counter()
            page.goto(f"{server.url}/runs/{run_id}/")
            page.wait_for_function(f"Object.keys(window.ptdReceived).length >= {len(stops)}")
            snapshot = time.perf_counter() - t
            seeded = server.manage("shell", "-c", SEED_RUNS)
            print(f"seeded runs: {seeded.strip().splitlines()[-1]}")
            times = []
            for url in ("/trends/?suite=trend-1000", "/trends/trend-1000/data/"):
                t = time.perf_counter()
                response = session.get(f"{server.url}{url}", timeout=60)
                times.append(time.perf_counter() - t)
                assert response.status_code == 200, response.status_code
            browser.close()
    finally:
        server.stop()
    ratio = median(lives) / median(heads)
    print(
        f"wall: headless median {median(heads):.2f} s, with page {median(lives):.2f} s, "
        f"ratio {ratio:.3f}; median of the rounds' ratios "
        f"{median([b / a for a, b in zip(heads, lives, strict=True)]):.3f} (target <= 1.10)"
    )
    print(
        f"report -> browser: p50 {statistics.median(latencies):.3f} s, "
        f"p95 {pct(latencies, 0.95):.3f} s (target <= 0.5 s), max {max(latencies):.3f} s"
    )
    print(
        f"sink -> browser per batch: p50 {statistics.median(page_lat):.3f} s, "
        f"p95 {pct(page_lat, 0.95):.3f} s"
    )
    print(
        f"run page HTML served in {run_page * 1000:.0f} ms (target <= 300 ms); page, snapshot "
        f"and all {len(stops)} results rendered in chromium {snapshot * 1000:.0f} ms"
    )
    print(f"trends over 1,000 runs: page {times[0] * 1000:.0f} ms, data {times[1] * 1000:.0f} ms")


if __name__ == "__main__":
    main()
