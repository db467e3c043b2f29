"""Issue #7 figures: the fork engine against plain pytest / pytest-xdist, alternating rounds.

    python -m tests.benchmarks.bench_fork [--rounds 3] [--only uniform,imports,api,skewed]

Measure in what users have: a venv holding only PTD and its test extras (every extra pytest
plugin an interpreter autoloads slows each of plain xdist's processes down, not PTD's one):

    python -m venv /tmp/lean && /tmp/lean/bin/pip install -e '.[test]'
    /tmp/lean/bin/python -m tests.benchmarks.bench_fork --only uniform --rounds 15

(On a shared 2-core machine single rounds vary by a third either way: take 15.)

The first lines name the interpreter, pytest, xdist and the plugins the figures come from.

For each scenario one PTD run first records the durations (the scheduler's history), then
the commands alternate; medians are compared with the issue's targets:

  uniform  2,000 tests of ~1 ms, N=2:  run_suite <= serial pytest, <= 0.6 x pytest -n 2
  imports  --import-cost 0.5, 100 tests, N=8:  run_suite <= 0.5 x pytest -n 8
  api      200 API calls of 0.2 s, N=16:  engine wall <= 1.4 x lower bound,
           run_suite <= 0.5 x pytest -n 16
  skewed   400 tests, 6 long ones last, N=4:  engine wall <= 1.10 x lower bound,
           run_suite <= 0.85 x pytest -n 4

"Engine wall" is a run's ``wall_seconds`` (its pytest process, launch to exit), measured on
runs started over the API of a ``serve`` (warm starts: forked from the suite's zygote) and,
reported beside it, on ``run_suite`` (a one-shot command: a cold interpreter every time).
Each round also times the run's own pytest command with no dashboard around it ("engine
alone": what run_suite would cost if Django, the database and the launch cost nothing), and
a served run is followed by a wait until the server is idle again, so its aftermath (the
fold, the next zygote) does not slow the command timed next.

Where serial pytest is timed (uniform), so is ``pytest --co`` (start-up and collection), for
the *collect-once floor*: that time plus the rest of the serial run divided by N, what an
engine that collects once in one process and adds no cost of its own would take on N cores.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import requests

from tests.benchmarks.common import (
    environment_report,
    fresh_data_dir,
    lower_bound,
    make_suite,
    median,
    run_collect_only,
    run_engine_alone,
    run_ptd,
    run_serial,
    run_xdist,
    wait_until_idle,
)
from tests.servers import ServeProcess

SCENARIOS = {
    # name: (make_suite args, workers, targets)
    "uniform": (["--profile", "uniform", "--tests", "2000"], 2, {"serial": 1.0, "xdist": 0.6}),
    "imports": (
        ["--profile", "uniform", "--tests", "100", "--import-cost", "0.5"],
        8,
        {"xdist": 0.5},
    ),
    "api": (["--profile", "api", "--tests", "200"], 16, {"bound": 1.4, "xdist": 0.5}),
    "skewed": (
        ["--profile", "skewed", "--tests", "400", "--seed", "1", "--long", "6"],
        4,
        {"bound": 1.10, "xdist": 0.85},
    ),
}


class Served:
    """A ``serve`` of its own, the suite registered there; ``run()`` runs it over the API."""

    def __init__(self, data_dir: Path, suite: Path, workers: int) -> None:
        self.server = ServeProcess(data_dir).start()
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {self.server.create_token()}"
        self.body = {"suite": suite.name, "workers": workers, "engine": "fork"}
        made = self.session.post(
            f"{self.server.url}/api/suites",
            json={"name": suite.name, "path": str(suite), "workers": workers},
            timeout=30,
        )
        assert made.status_code == 201, made.text

    def run(self) -> dict:
        made = self.session.post(f"{self.server.url}/api/runs", json=self.body, timeout=30)
        assert made.status_code == 201, made.text
        url = f"{self.server.url}/api/runs/{made.json()['id']}"
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            run = self.session.get(url, timeout=30).json()
            if run["status"] not in ("queued", "running"):
                assert run["status"] == "passed", run
                # Its aftermath (the fold, the next zygote) must not share the cores with
                # the command timed next.
                wait_until_idle(self.server.proc.pid)
                return run
            time.sleep(0.5)  # the run's own wall time is measured by the server
        raise RuntimeError(f"run {url} did not finish")

    def stop(self) -> None:
        self.server.stop()


def bench(name: str, rounds: int, base: Path) -> list[str]:
    args, n, targets = SCENARIOS[name]
    suite = base / name
    made = make_suite(suite, *args)
    bound = lower_bound(made["planned"], n)
    data = fresh_data_dir()
    ptd_args = ["--workers", str(n), "--engine", "fork"]
    run_ptd(data, suite, *ptd_args)  # records the durations the scheduler uses next
    served = Served(base / f"{name}-serve", suite, n)
    served.run()  # the same for the server, which also starts the suite's zygote
    cmd, wall, xdist, serial, warm, alone, collect = [], [], [], [], [], [], []
    try:
        for i in range(rounds):
            took, summary = run_ptd(data, suite, *ptd_args)
            assert summary["status"] == "passed", summary
            cmd.append(took)
            wall.append(summary["wall_seconds"])
            warm.append(served.run()["wall_seconds"])
            xdist.append(run_xdist(suite, n))
            alone.append(run_engine_alone(suite, n))
            line = (
                f"  round {i + 1}: run_suite {took:.2f} s (engine {wall[-1]:.2f} s, "
                f"balance {summary['balance']:.3f}), served {warm[-1]:.2f} s, "
                f"pytest -n {n} {xdist[-1]:.2f} s, engine alone {alone[-1]:.2f} s"
            )
            if "serial" in targets:
                serial.append(run_serial(suite))
                collect.append(run_collect_only(suite))
                line += f", serial pytest {serial[-1]:.2f} s, pytest --co {collect[-1]:.2f} s"
            print(line, flush=True)
    finally:
        served.stop()
    m_cmd, m_wall, m_x, m_warm = median(cmd), median(wall), median(xdist), median(warm)
    out = [
        f"{name}: N={n}, lower bound {bound:.2f} s; medians of {rounds}: run_suite "
        f"{m_cmd:.2f} s (engine wall {m_wall:.2f} s), served engine wall {m_warm:.2f} s, "
        f"pytest -n {n} {m_x:.2f} s" + (f", serial {median(serial):.2f} s" if serial else ""),
        f"  engine alone (the run's pytest command, no dashboard, no history) {median(alone):.2f} s"
        f" = {median(alone) / m_x:.3f} x pytest -n {n}",
    ]
    ratios = sorted(c / x for c, x in zip(cmd, xdist, strict=True))
    target = targets.get("xdist")
    out.append(
        f"  per round, run_suite / pytest -n {n}: median {median(ratios):.3f}, range "
        f"{ratios[0]:.3f}-{ratios[-1]:.3f}"
        + (f", {sum(r <= target for r in ratios)} of {rounds} <= {target}" if target else "")
    )
    if collect:
        # What no collect-once engine beats on N cores: pytest's start-up and collection
        # (serial, in the one process that collects), then the rest of the serial run's
        # work spread perfectly over N workers with no cost of its own.
        floor = median(collect) + (median(serial) - median(collect)) / n
        out.append(
            f"  collect-once floor (pytest --co {median(collect):.2f} s + the rest of the "
            f"serial run / {n}) {floor:.2f} s = {floor / m_x:.3f} x pytest -n {n}; "
            f"run_suite = {m_cmd / floor:.3f} x that floor"
        )
    checks = {
        "serial": ("run_suite / serial pytest", m_cmd / median(serial) if serial else None),
        "xdist": (f"run_suite / pytest -n {n}", m_cmd / m_x),
        "bound": ("served engine wall / lower bound", m_warm / bound),
        "cold": ("run_suite engine wall / lower bound", m_wall / bound),
    }
    if "bound" in targets:
        targets = {**targets, "cold": targets["bound"]}
    for key, target in targets.items():
        label, value = checks[key]
        verdict = "ok" if value <= target else "MISSED"
        out.append(f"  {label} = {value:.3f}  (target <= {target:.2f}) {verdict}")
    return out


def main() -> None:
    print(environment_report(), flush=True)
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default=",".join(SCENARIOS))
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="ptd-bench-fork-"))
    report = []
    for name in args.only.split(","):
        print(f"== {name}", flush=True)
        lines = bench(name.strip(), args.rounds, base)
        print("\n".join(lines), flush=True)
        report += lines
    print("\n== summary\n" + "\n".join(report))


if __name__ == "__main__":
    main()
