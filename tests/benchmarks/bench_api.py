"""Issue #5 figure: 100 concurrent `POST /api/runs` -> 100 runs queued, all executed in order
under the pool limit, none lost.

A live `manage.py serve` (PTD_MAX_CONCURRENT_RUNS=2) and a one-test suite; 100 threads post at
once; then every run is awaited (bounded) and the start order and overlap are checked.

    python -m tests.benchmarks.bench_api [--runs 100] [--limit 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import requests

from tests.benchmarks.common import environment_report
from tests.servers import ServeProcess, isolated_env


def main() -> None:
    print(environment_report(), flush=True)
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--limit", type=int, default=2)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="ptd-bench-api-"))
    suite = base / "tiny"
    (suite / "tests").mkdir(parents=True)
    (suite / "pytest.ini").write_text("[pytest]\n")
    (suite / "tests" / "test_one.py").write_text("def test_one():\n    pass\n")
    env = {**isolated_env(base / "data"), "PTD_MAX_CONCURRENT_RUNS": str(args.limit)}
    server = ServeProcess(base / "data", env=env).start()
    try:
        token = server.create_token()
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {token}"
        made = session.post(
            f"{server.url}/api/suites",
            json={"name": "tiny", "path": str(suite), "workers": 1},
            timeout=30,
        )
        assert made.status_code == 201, made.text

        def post(_):
            return requests.post(
                f"{server.url}/api/runs",
                json={"suite": "tiny"},
                timeout=60,
                headers={"Authorization": f"Bearer {token}"},
            )

        start = time.perf_counter()
        with ThreadPoolExecutor(args.runs) as pool:
            answers = list(pool.map(post, range(args.runs)))
        took = time.perf_counter() - start
        codes = sorted({a.status_code for a in answers})
        ids = sorted(a.json()["id"] for a in answers if a.status_code == 201)
        print(
            f"{args.runs} concurrent POST /api/runs in {took:.2f} s: statuses {codes}, "
            f"{len(set(ids))} distinct runs queued"
        )
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            page = session.get(f"{server.url}/api/runs?suite=tiny&limit=1000", timeout=30).json()
            if page["count"] >= len(ids) and all(
                r["status"] not in ("queued", "running") for r in page["items"]
            ):
                break
            time.sleep(0.5)
        executed = time.perf_counter() - start
        runs = {r["id"]: r for r in page["items"] if r["id"] in set(ids)}
        statuses = {}
        for r in runs.values():
            statuses[r["status"]] = statuses.get(r["status"], 0) + 1

        def when(i, key):
            return datetime.fromisoformat(runs[i][key])

        # The queue is FIFO by (created_at, id); compare parsed times, never strings.
        queue = sorted(ids, key=lambda i: (when(i, "created_at"), i))
        starts = sorted(ids, key=lambda i: (when(i, "started_at"), i))
        # With L runs at once, two started together may swap by a few ms: FIFO means no run
        # starts more than L - 1 places away from its place in the queue.
        if args.verbose:
            for i in starts:
                print(i, runs[i]["created_at"], runs[i]["started_at"], runs[i]["finished_at"])
        displacement = max(abs(starts.index(i) - queue.index(i)) for i in ids)
        spans = sorted((datetime.fromisoformat(runs[i]["started_at"]), +1) for i in ids) + sorted(
            (datetime.fromisoformat(runs[i]["finished_at"]), -1) for i in ids
        )
        peak = current = 0
        for _, delta in sorted(spans, key=lambda s: (s[0], s[1])):
            current += delta
            peak = max(peak, current)
        print(
            f"all finished after {executed:.1f} s: {statuses}; none lost: "
            f"{len(runs) == args.runs}; max displacement from queue order {displacement}; "
            f"peak concurrent runs {peak} (limit {args.limit})"
        )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
