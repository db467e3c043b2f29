"""Issue #17 figure: comparing two runs of 10,000 tests each answers in <= 300 ms.

Two runs of `--size` results (a few hundred failing, every 50th test 0.5 s, run B's twice as
slow) in a fresh data directory; then `--rounds` times each: runs.insight.queries.compare_runs
(3 queries: both runs, then each side's rows), the API operation through Django's test client
(serialization included; no network), and the page. Median and best; exit 1 if the API's median
is over the budget.

    python -m tests.benchmarks.bench_compare [--size 10000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

from tests.benchmarks.common import ROOT, environment_report, fresh_data_dir

BUDGET = 0.300


def setup(size: int) -> tuple[int, int]:
    from django.contrib.auth import get_user_model

    from runs.models import Run, Suite
    from tests.factories import make_run
    from tests.test_compare import big_results

    suite = Suite.objects.create(name="bench-compare", path=str(ROOT))
    get_user_model().objects.create_user("bench", password="pw-bench-1234")
    a = make_run(suite, results=big_results(size, 97, 50), status=Run.Status.FAILED)
    b = make_run(suite, results=big_results(size, 89, 50, 2.0), status=Run.Status.FAILED)
    return a.id, b.id


def timed(fn, rounds: int) -> dict:
    samples = []
    for _ in range(rounds):
        began = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - began)
    return {"median": round(statistics.median(samples), 4), "best": round(min(samples), 4)}


def main() -> None:
    print(environment_report(), flush=True)
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    os.environ["PTD_DATA_DIR"] = str(fresh_data_dir())
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.test import Client

    from runs.insight import queries

    a, b = setup(args.size)
    client = Client(HTTP_HOST="127.0.0.1")  # an allowed host, as the server is reached
    client.force_login(get_user_model().objects.get(username="bench"))

    def api():
        response = client.get(f"/api/runs/{a}/compare/{b}")
        assert response.status_code == 200, response.content[:500]

    def page():
        response = client.get(f"/runs/{a}/compare/{b}/")
        assert response.status_code == 200

    result = {
        "size": args.size,
        "compare_runs": timed(lambda: queries.compare_runs(a, b), args.rounds),
        "api": timed(api, args.rounds),
        "page": timed(page, args.rounds),
        "budget": BUDGET,
        "loadavg": Path("/proc/loadavg").read_text().split()[:3],
    }
    print(json.dumps(result, indent=1))
    sys.exit(0 if result["api"]["median"] <= BUDGET else 1)


if __name__ == "__main__":
    main()
