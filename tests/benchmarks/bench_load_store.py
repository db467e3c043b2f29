"""Issue #16 figure: what an hour of load at 1,000 iterations/s costs the dashboard to store.

3,600 seconds of ticks from 2 engine processes (500 iterations each per second, lognormal
latencies, 3 tests and 4 endpoints) go through the real aggregator (runs.load.aggregate) into
a fresh database, in batches as the pool's reader delivers them (one tick per process per
batch). Reported: rows written per table, the aggregator's CPU per second of load, and the
p95 read back against the raw samples'.

    python -m tests.benchmarks.bench_load_store [--seconds 3600] [--rate 1000]
"""

from __future__ import annotations

import argparse
import math
import os
import random
import tempfile
import time
from pathlib import Path

from tests.benchmarks.common import environment_report


def main() -> None:
    print(environment_report(), flush=True)
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=3600)
    parser.add_argument("--rate", type=int, default=1000, help="iterations per second")
    args = parser.parse_args()
    os.environ["PTD_DATA_DIR"] = tempfile.mkdtemp(prefix="ptd-bench-load-")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from django.conf import settings

    from runner.loadstats import Entry
    from runs.load import queries
    from runs.load.aggregate import LoadAggregator
    from runs.models import LoadEntry, LoadError, LoadSecond, Run, Suite

    suite = Suite.objects.create(name="bench", path=str(Path(settings.PTD_DEMO_SUITE_DIR)))
    run = Run.objects.create(
        suite=suite,
        status="running",
        config_snapshot={"mode": "load", "users": 100, "thresholds": ["p95<400ms", "errors<1%"]},
    )
    tests = [f"tests/test_api.py::test_{i}" for i in range(3)]
    endpoints = ["GET /items/{id}", "POST /items", "GET /health", "DELETE /items/{id}"]
    rng = random.Random(16)
    per_process = args.rate // 2
    aggregator = LoadAggregator.for_run(run)
    aggregator.feed([{"type": "load_start", "time": 0.0, "users": 100, "processes": 2}])
    spent, raw_sample = 0.0, []
    for second in range(args.seconds):
        for process in ("p0", "p1"):
            by_test = {name: Entry() for name in tests}
            by_endpoint = {name: Entry() for name in endpoints}
            for i in range(per_process):
                ms = rng.lognormvariate(5.3, 0.35)
                by_test[tests[i % 3]].add(ms, failed=i % 250 == 0)
                by_endpoint[endpoints[i % 4]].add(ms * 0.8)
                if second % 60 == 0:
                    raw_sample.append(ms)
            tick = {
                "type": "load_tick",
                "time": second + 1.0,
                "process": process,
                "second": second,
                "users": 50,
                "tests": {k: v.to_dict() for k, v in by_test.items()},
                "requests": {k: v.to_dict() for k, v in by_endpoint.items()},
            }
            began = time.process_time()
            aggregator.feed([tick])
            spent += time.process_time() - began
    began = time.process_time()
    aggregator.feed([{"type": "load_stop", "time": args.seconds + 0.0, "reason": "duration"}])
    aggregator.finish()
    spent += time.process_time() - began
    load = queries.load_dict(run)
    ordered = sorted(raw_sample)
    raw_p95 = ordered[math.ceil(len(ordered) * 0.95) - 1]
    print(f"seconds of load: {args.seconds}, iterations: {load['iterations']:,}")
    print(
        f"rows: LoadSecond {LoadSecond.objects.filter(run=run).count()}, "
        f"LoadEntry {LoadEntry.objects.filter(run=run).count()}, "
        f"LoadError {LoadError.objects.filter(run=run).count()}"
    )
    print(
        f"aggregator CPU: {spent:.1f} s in all, {spent / args.seconds * 1000:.2f} ms per "
        f"second of load ({settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]})"
    )
    print(
        f"p95: {load['p95_ms']:.1f} ms stored, {raw_p95:.1f} ms raw (one second a minute "
        f"sampled), thresholds {load['thresholds']}"
    )


if __name__ == "__main__":
    main()
