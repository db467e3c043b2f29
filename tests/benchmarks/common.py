"""Shared pieces of the benchmarks: generate suites, time commands, run PTD and plain xdist.

Benchmarks are scripts (bench_*.py), not collected by pytest: run them on demand, e.g.
`python -m tests.benchmarks.bench_runner`.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# shared/bench/make_suite.py next to the checkout (or a worktree's ancestors), or $PTD_MAKE_SUITE.
MAKE_SUITE = Path(
    os.environ.get("PTD_MAKE_SUITE")
    or next(
        (p / "shared" / "bench" / "make_suite.py" for p in ROOT.parents
         if (p / "shared" / "bench" / "make_suite.py").exists()),
        ROOT.parent / "shared" / "bench" / "make_suite.py",
    )
)  # fmt: skip


def make_suite(out: Path, *args: str) -> dict:
    """Generate a suite with shared/bench/make_suite.py; returns its planned durations."""
    text = subprocess.run(
        [sys.executable, str(MAKE_SUITE), str(out), *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    bounds = {int(n): float(s) for n, s in re.findall(r"with\s+(\d+) workers: ([\d.]+) s", text)}
    planned = json.loads((out / "durations.json").read_text())
    return {"planned": planned, "bounds": bounds, "text": text}


def lower_bound(planned: dict, workers: int) -> float:
    total = sum(planned.values())
    return max(total / workers, max(planned.values()))


def user_env() -> dict:
    """This environment as on users' machines: Python writes bytecode. (A sandbox or CI image
    may set PYTHONDONTWRITEBYTECODE: then every command would compile its modules again on
    each run; PTD's own ~60 took ~0.09 s of each run_suite, while xdist's and pytest's
    timings did not move: they write pytest's own rewrite cache either way.)"""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def data_env(data_dir: Path) -> dict:
    env = {**user_env(), "PTD_DATA_DIR": str(data_dir)}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return env


def fresh_data_dir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="ptd-bench-"))
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=data_env(path), check=True
    )
    return path


def timed(argv: list[str], cwd: Path, env: dict | None = None) -> tuple[float, str]:
    start = time.perf_counter()
    out = subprocess.run(argv, cwd=cwd, env=env or user_env(), capture_output=True, text=True)
    took = time.perf_counter() - start
    if out.returncode not in (0, 1):
        raise RuntimeError(f"{argv} exited {out.returncode}:\n{out.stdout}\n{out.stderr}")
    return took, out.stdout


def run_ptd(data_dir: Path, suite: Path, *args: str) -> tuple[float, dict]:
    took, stdout = timed(
        [sys.executable, "manage.py", "run_suite", str(suite), "--json", *args],
        ROOT,
        data_env(data_dir),
    )
    return took, json.loads(stdout.strip().splitlines()[-1])


def run_xdist(suite: Path, workers: int, *args: str) -> float:
    took, _ = timed(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", str(workers), *args],
        suite,
    )
    return took


def run_engine_alone(suite: Path, workers: int) -> float:
    """PTD's fork engine with no dashboard around it: the run's own pytest command and
    environment, as the pool makes them, from a cold interpreter, with no history and its
    events going nowhere. What ``run_suite`` costs beyond this is Django's, the database's
    and the launch's."""
    from runner import command

    argv = command.build_argv(sys.executable, workers=workers, engine="fork")
    pycache = suite.parent / f".{suite.name}-pycache"  # bytecode kept, as run_suite's
    env = command.build_env(user_env(), {}, None, None, pycache_dir=str(pycache))
    took, _ = timed(argv, suite, env)
    return took


def run_serial(suite: Path) -> float:
    took, _ = timed([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], suite)
    return took


def run_collect_only(suite: Path) -> float:
    """Plain pytest up to the end of its collection (the part no engine that collects once
    can spread over workers: its start-up and collection)."""
    took, _ = timed([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--co"], suite)
    return took


def _tree_cpu_ticks(pid: int) -> int:
    """CPU clock ticks used so far by ``pid`` and every live process below it (Linux /proc)."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
    return total


def wait_until_idle(pid: int, quiet: float = 0.3, timeout: float = 10.0) -> None:
    """Until ``pid``'s process tree has used no CPU for ``quiet`` seconds (bounded).

    A server goes on working after a run it served is over (its history thread folds the
    run, a fresh zygote preloads pytest): a command timed meanwhile would share the cores with
    it, and look slower than it is."""
    deadline = time.monotonic() + timeout
    last, since = _tree_cpu_ticks(pid), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now = _tree_cpu_ticks(pid)
        if now != last:  # (less: a process of the tree ended; the others may be busy)
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return


def median(values: list[float]) -> float:
    return statistics.median(values)


def environment_report(python: str = sys.executable) -> str:
    """What the figures were measured with: the interpreter, pytest, xdist and every plugin
    pytest would load there (a plugin-heavy interpreter slows plain xdist down, not PTD)."""
    code = (
        "import sys, importlib.metadata as m\n"
        "eps = sorted({(e.dist.name, e.dist.version) for e in m.entry_points(group='pytest11')})\n"
        "v = lambda n: next((d.version for d in m.distributions() if d.metadata['Name'] and "
        "d.metadata['Name'].lower() == n), 'absent')\n"
        'print(f\'python {sys.version.split()[0]} ({sys.executable}); pytest {v("pytest")}, '
        'pytest-xdist {v("pytest-xdist")}\')\n'
        "print('pytest plugins: ' + (', '.join(f'{n} {ver}' for n, ver in eps) or 'none'))\n"
    )
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip()
