"""Runs across machines against static sharding, side by side (issue #15).

The skewed profile (make_suite.py: 400 tests, seed 1, 6 long tests collected last), served by
`manage.py serve`, three real agents (Celery workers, separate processes, each with its own
copy of the suite, --path-map) of 4 fork workers each, after one recording run:

- PTD: the run's wall (dispatch to finish) and its engine wall (first test start to last test
  stop; the difference is shard start-up: broker, pytest start, collection) against the lower
  bound max(work / 12, longest test);
- static sharding as users have it today: three `pytest -n 4 --splits 3 --group i`
  (pytest-split from PyPI, durations from the same recording run) started together, wall =
  the slowest group's;
- PTD with one agent SIGKILLed at half the healthy wall: its wall, and every test reported.

    pip install pytest-split
    PYTHONPATH=$PWD python -m tests.benchmarks.bench_agents [--repeat N]

`--repeat N`: N healthy runs after the recording one (one is noisy on 2 shared cores); the
check takes their median.

Needs Redis on 127.0.0.1:6379 (PTD_TEST_BROKER_URL). Prints one JSON object.

`--rate`: what one dashboard serves instead: 8 agents of 1 worker running 2,000 tests of ~1 ms
(the uniform profile): results stored and units leased per second over the engine's wall.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from tests.benchmarks.common import make_suite
from tests.fleet import Fleet

TESTS, SEED, MACHINES, WORKERS = 400, 1, 3, 4
LOST_SECONDS = 15.0  # the default detection (PTD_AGENT_LOST_SECONDS): "within 30 s"


def seconds(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def ptd_run(fleet: Fleet, kill_after: float | None = None) -> dict:
    all_idle(fleet)
    began = time.monotonic()
    run_id = fleet.post("/api/runs", {"suite": "skewed", "machines": MACHINES,
                                       "workers": WORKERS})["id"]  # fmt: skip
    killed = None
    if kill_after is not None:
        fleet.wait(lambda: fleet.get(f"/api/runs/{run_id}")["tests"]["total"] > 0, 60, "tests")
        time.sleep(max(0.0, kill_after - (time.monotonic() - began)))
        killed = next(iter(fleet.agents))
        fleet.kill_agent(killed)
    run = fleet.wait_run(run_id, timeout=600)
    results = fleet.results_all(run_id)
    starts = [r["start"] for r in results if r["start"]]
    stops = [r["stop"] for r in results if r["stop"]]
    final = {r["nodeid"] for r in results if r["outcome"] not in ("crashed", "rerun")}
    return {
        "status": run["status"],
        "wall_seconds": run["wall_seconds"],
        "engine_wall": max(stops) - min(starts),
        "startup": min(starts) - seconds(run["started_at"]),
        "serial_seconds": run["serial_seconds"],
        "tests_reported": len(final),
        "crashed_attempts": sum(r["outcome"] == "crashed" for r in results),
        "killed": killed,
        "machines": {m["agent"]: m["state"] for m in run["machines"]},
        "timeline": timeline(results),
    }


def timeline(results: list[dict]) -> dict:
    """Per machine, from the run's first test start: its first start, last stop and how busy
    its workers were between the two (where an engine wall above the bound comes from)."""
    t0 = min(r["start"] for r in results if r["start"])
    machines: dict[str, list[dict]] = {}
    for r in results:
        if r["start"] and r["stop"]:
            machines.setdefault(r["worker"].split("/")[0], []).append(r)
    out = {}
    for machine, rows in sorted(machines.items()):
        first, last = min(r["start"] for r in rows), max(r["stop"] for r in rows)
        workers = {r["worker"] for r in rows}
        busy = sum(r["stop"] - r["start"] for r in rows)
        longest = sorted(rows, key=lambda r: r["stop"] - r["start"], reverse=True)[:WORKERS]
        gaps = []  # (idle seconds, at) between one test's stop and the next start, per worker
        for worker in workers:
            mine = sorted((r for r in rows if r["worker"] == worker), key=lambda r: r["start"])
            gaps += [
                (b["start"] - a["stop"], a["stop"] - t0)
                for a, b in zip(mine, mine[1:], strict=False)
            ]
        gaps.sort(reverse=True)
        out[machine] = {
            "first_start": round(first - t0, 2),
            "idle_between_tests": round(sum(g for g, _ in gaps), 2),
            "worst_gaps": [[round(g, 3), round(at, 2)] for g, at in gaps[:5]],
            "idle_at_end": round(
                sum(last - max(r["stop"] for r in rows if r["worker"] == w) for w in workers), 2
            ),
            "last_stop": round(last - t0, 2),
            "busy_share": round(busy / max(1e-9, len(workers) * (last - first)), 2),
            # Its longest tests: when each started and took (longest-first puts them early).
            "longest": [
                [round(r["start"] - t0, 2), round(r["stop"] - r["start"], 2)] for r in longest
            ],
        }
    return out


def all_idle(fleet: Fleet) -> None:
    fleet.wait(lambda: len(fleet.idle()) >= len(fleet.alive()), 60, "idle agents")


def static_baseline(fleet: Fleet, run_id: int) -> dict:
    """Three pytest-split groups of `pytest -n 4`, durations from PTD's recording run."""
    durations = {r["nodeid"]: r["duration"] for r in fleet.results_all(run_id)}
    walls = []
    procs = []
    began = time.monotonic()
    for i, copy in enumerate(list(fleet.copies.values())[:MACHINES]):
        path = copy / ".test_durations"
        path.write_text(json.dumps(durations))
        argv = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-n",
            str(WORKERS),
            "--splits",
            str(MACHINES),
            "--group",
            str(i + 1),
            "--durations-path",
            str(path),
        ]
        procs.append(subprocess.Popen(argv, cwd=copy, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))  # fmt: skip
    for proc in procs:
        proc.wait()
        walls.append(time.monotonic() - began)
    return {"wall_seconds": max(walls), "group_walls": walls,
            "exit_codes": [p.returncode for p in procs]}  # fmt: skip


def rate(agents: int = 8, tests: int = 2000) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="ptd-bench-rate-"))

    def maker(path: Path) -> Path:
        make_suite(path, "--profile", "uniform", "--tests", str(tests), "--seed", str(SEED))
        return path

    fleet = Fleet(tmp, maker=maker, lost_seconds=LOST_SECONDS)
    try:
        fleet.server.start()
        fleet.token = fleet.server.create_token("admin")
        fleet.http.headers["Authorization"] = f"Bearer {fleet.token}"
        fleet.post("/api/suites", {"name": "skewed", "path": str(fleet.base)})
        for i in range(agents):
            fleet.start_agent(f"r{i}-{fleet.tag}", 1)
        fleet.wait(lambda: len(fleet.idle()) == agents, 120, "agents")
        global MACHINES, WORKERS
        MACHINES, WORKERS = agents, 1
        first = ptd_run(fleet)
        second = ptd_run(fleet)
        for r in (first, second):
            r["results_per_second"] = r["tests_reported"] / r["engine_wall"]
        report = {
            "agents": agents, "tests": tests, "runs": [first, second],
            "loadavg": Path("/proc/loadavg").read_text().split()[:3], "cpus": os.cpu_count(),
        }  # fmt: skip
        print(json.dumps(report, indent=2))
    finally:
        fleet.stop()


def main() -> None:
    if "--rate" in sys.argv:
        rate()
        return
    tmp = Path(tempfile.mkdtemp(prefix="ptd-bench-agents-"))
    made = {}

    def maker(path: Path) -> Path:
        info = make_suite(path, "--profile", "skewed", "--tests", str(TESTS), "--seed", str(SEED))
        made.setdefault("planned", info["planned"])
        return path

    fleet = Fleet(tmp, maker=maker, lost_seconds=LOST_SECONDS)
    try:
        fleet.server.start()
        fleet.token = fleet.server.create_token("admin")
        fleet.http.headers["Authorization"] = f"Bearer {fleet.token}"
        fleet.post("/api/suites", {"name": "skewed", "path": str(fleet.base)})
        for i in range(MACHINES):
            fleet.start_agent(f"m{i}-{fleet.tag}", WORKERS)
        fleet.wait(lambda: len(fleet.idle()) == MACHINES, 60, "agents")
        planned = made["planned"]
        work, longest = sum(planned.values()), max(planned.values())
        bound = max(work / (MACHINES * WORKERS), longest)
        recording = ptd_run(fleet)
        recording_id = fleet.get("/api/runs?limit=1")["items"][0]["id"]
        repeat = int(sys.argv[sys.argv.index("--repeat") + 1]) if "--repeat" in sys.argv else 1
        runs = [ptd_run(fleet) for _ in range(max(1, repeat))]
        walls = sorted(r["engine_wall"] for r in runs)
        healthy = min(runs, key=lambda r: abs(r["engine_wall"] - walls[len(walls) // 2]))
        healthy["engine_walls_vs_bound"] = [round(w / bound, 3) for w in walls]
        baseline = static_baseline(fleet, recording_id)
        killed = ptd_run(fleet, kill_after=healthy["wall_seconds"] / 2)
        report = {
            "suite": {"profile": "skewed", "tests": TESTS, "seed": SEED, "work": work,
                      "longest": longest, "lower_bound": bound},
            "recording": recording,
            "healthy": healthy,
            "static_pytest_split": baseline,
            "one_agent_killed_at_half": killed,
            "checks": {
                "engine_wall_vs_bound (<= 1.15)": healthy["engine_wall"] / bound,
                "healthy_wall_vs_static (<= 0.80)": healthy["wall_seconds"]
                / baseline["wall_seconds"],
                "killed_wall_minus_healthy (<= 30 + 2 x longest)": killed["wall_seconds"]
                - healthy["wall_seconds"],
                "killed_budget": 30 + 2 * longest,
            },
            "loadavg": Path("/proc/loadavg").read_text().split()[:3],
            "cpus": os.cpu_count(),
        }  # fmt: skip
        print(json.dumps(report, indent=2))
    finally:
        fleet.stop()


if __name__ == "__main__":
    main()
