"""Issue #3 figures: PTD's xdist engine with longest-first scheduling vs plain `pytest -n 4`.

Skewed profile, 400 tests, seed 1, 6 long tests collected last; one PTD run first records the
durations, then PTD and plain xdist alternate. Prints medians and the ratios the issue asks
for:   whole run_suite <= 0.90 x pytest -n 4;  engine wall <= 1.20 x lower bound.

    python -m tests.benchmarks.bench_runner [--rounds 5] [--engine xdist]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from tests.benchmarks.common import (
    environment_report,
    fresh_data_dir,
    lower_bound,
    make_suite,
    median,
    run_ptd,
    run_xdist,
)


def main() -> None:
    print(environment_report(), flush=True)
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--engine", default="xdist")
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    n = args.workers
    suite = Path(tempfile.mkdtemp(prefix="ptd-bench-suite-")) / "skewed"
    made = make_suite(suite, "--profile", "skewed", "--tests", "400", "--seed", "1", "--long", "6")
    bound = lower_bound(made["planned"], n)
    data = fresh_data_dir()
    run_ptd(data, suite, "--workers", str(n), "--engine", args.engine)  # records durations
    ptd_cmd, ptd_wall, plain = [], [], []
    for i in range(args.rounds):
        took, summary = run_ptd(data, suite, "--workers", str(n), "--engine", args.engine)
        ptd_cmd.append(took)
        ptd_wall.append(summary["wall_seconds"])
        plain.append(run_xdist(suite, n))
        print(
            f"round {i + 1}: run_suite {took:.2f} s (engine {summary['wall_seconds']:.2f} s, "
            f"balance {summary['balance']:.3f}), pytest -n {n} {plain[-1]:.2f} s"
        )
    m_cmd, m_wall, m_plain = median(ptd_cmd), median(ptd_wall), median(plain)
    print(f"lower bound max(work/N, longest) = {bound:.2f} s")
    print(
        f"median run_suite {m_cmd:.2f} s, engine wall {m_wall:.2f} s, pytest -n {n} {m_plain:.2f} s"
    )
    print(f"run_suite / pytest -n {n} = {m_cmd / m_plain:.3f}  (target <= 0.90)")
    print(f"engine wall / lower bound = {m_wall / bound:.3f}  (target <= 1.20)")


if __name__ == "__main__":
    main()
