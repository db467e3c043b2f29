"""Issue #16 figures: PTD's load engine beside Locust, same machine, same endpoint, one run.

    python -m tests.benchmarks.bench_load [--only a,b,c] [--seconds-a 30] [--seconds-c 60]

Locust comes from PyPI in its own venv (``/tmp/locust-venv``, created on first use and kept);
its ``HttpUser`` runs ``self.client.get(URL)``, PTD's users run the seed-003 functional test
``test_get`` (``requests.get(URL)`` then an assert), unchanged. The endpoint is a threaded
HTTP/1.1 server in two processes of its own (SO_REUSEPORT), so neither tool shares a GIL with
it. PTD is driven directly (the run's pytest with the in-run plugin, its events read from the
pipe): the dashboard's side is not measured here.

  a  100 users, 0.2 s endpoint, 30 s: PTD iterations/s >= 0.9 x Locust requests/s and
     >= 0.8 x 500/s; p50 and p95 of the request within 10 % of Locust's.
  b  0 s endpoint, 2 processes each: iterations (requests) per second per CPU-second of the
     load generator (its processes' user+system time), goal PTD >= 0.5 x Locust; and where
     PTD's time goes: a no-op test (pytest's protocol alone), requests.get alone, and the
     same test with one keep-alive Session (Locust's HttpUser keeps its connection).
  c  500 users, 0.2 s endpoint, 60 s, PTD: no error of PTD's own, no failed iteration, and
     each process's per-second tick sent within 1 s of its second (p95; the page's update
     delay before the dashboard's share).

CPU is shared by everything on the machine: the load average is printed with each figure.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

from runner.command import PLUGIN_MODULE, build_argv, build_env

LOCUST_VENV = Path("/tmp/locust-venv")
PORT_BASE = int(os.environ.get("PTD_BENCH_PORT", "18400"))

SERVER = """
import socket, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
DELAY = float(sys.argv[2])
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed ACK
    def do_GET(self):
        if DELAY:
            time.sleep(DELAY)
        body = b'{"code": 1, "message": "Hello, World!"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
class S(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024
    def server_bind(self):
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()
S(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""

PTD_TESTS = {
    "test_get.py": """
        import os
        import requests

        URL = os.environ["BENCH_URL"]

        def test_get():
            response = requests.get(URL)
            assert response.status_code == 200
            assert response.json()["code"] == 1
    """,
    "test_noop.py": """
        def test_noop():
            pass
    """,
    "test_session.py": """
        import os
        import pytest
        import requests

        URL = os.environ["BENCH_URL"]

        @pytest.fixture(scope="module")
        def http():
            with requests.Session() as session:
                yield session

        def test_session_get(http):
            response = http.get(URL)
            assert response.status_code == 200
    """,
}

LOCUSTFILE = """
import os
from locust import HttpUser, constant, task

class ApiUser(HttpUser):
    wait_time = constant(0)

    @task
    def get(self):
        with self.client.get(os.environ["BENCH_PATH"], catch_response=True) as response:
            if response.status_code != 200 or response.json()["code"] != 1:
                response.failure("bad answer")
"""


def loadavg() -> str:
    return Path("/proc/loadavg").read_text().split(" ", 3)[:3].__str__()


def locust_python() -> str:
    python = LOCUST_VENV / "bin" / "python"
    if not (LOCUST_VENV / "bin" / "locust").exists():
        print(f"creating {LOCUST_VENV} with locust from PyPI ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(LOCUST_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "locust"], check=True)
    return str(python)


class Servers:
    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []

    def start(self, port: int, delay: float, processes: int = 2) -> str:
        for _ in range(processes):
            self.procs.append(
                subprocess.Popen([sys.executable, "-c", SERVER, str(port), str(delay)])
            )
        deadline = time.monotonic() + 10
        import socket

        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                return f"http://127.0.0.1:{port}/json"
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
            proc.wait()


def cpu_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_ptd(suite: Path, test: str, url: str, users: int, seconds: int, processes: int) -> dict:
    from _ptd_inrun.load.histogram import Entry  # importable once runner is (its sys.path)

    argv = build_argv(sys.executable, workers=processes, mode="load", users=users, duration=seconds)
    argv += ["-p", "no:asyncio", f"{test}"]
    r, w = os.pipe()
    env = build_env(os.environ, {"BENCH_URL": url, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}, w,
                    None)  # fmt: skip
    assert PLUGIN_MODULE in argv
    events: list[dict] = []

    def read() -> None:
        with os.fdopen(r, "rb") as fh:
            events.extend(json.loads(line) for line in fh)

    before = cpu_of_children()
    proc = subprocess.Popen(argv, cwd=suite, env=env, pass_fds=(w,), stdout=subprocess.DEVNULL)
    os.close(w)
    reader = threading.Thread(target=read)
    reader.start()
    code = proc.wait()
    reader.join()
    cpu = cpu_of_children() - before
    start = next(e for e in events if e["type"] == "load_start")
    stop = next(e for e in events if e["type"] == "load_stop")
    tests, requests_ = Entry(), Entry()
    gaps: dict[str, list[float]] = {}
    for tick in (e for e in events if e["type"] == "load_tick"):
        for data in tick["tests"].values():
            tests.merge(Entry.from_dict(data))
        for data in tick["requests"].values():
            requests_.merge(Entry.from_dict(data))
        gaps.setdefault(tick["process"], []).append(tick["time"])
    wall = stop["time"] - start["time"]
    # How late each tick left its process after the second it is dated (the page's update
    # delay, before the dashboard's own part): p95 over every tick of every process.
    delays = sorted(
        e["time"] - (start["time"] + e["second"]) for e in events if e["type"] == "load_tick"
    )
    p95_delay = delays[int(0.95 * (len(delays) - 1))] if delays else 0.0
    max_gap = max((b - a for ts in gaps.values() for a, b in zip(ts, ts[1:], strict=False)),
                  default=0.0)  # fmt: skip
    own_errors = [e for e in events if e["type"] in ("warning", "internal_error")]
    return {
        "exit": code,
        "iterations": tests.count,
        "failures": tests.failures + tests.exceptions,
        "rate": tests.count / wall,
        "wall": wall,
        "cpu": cpu,
        "per_cpu": tests.count / cpu if cpu else 0.0,
        "p50": requests_.histogram.percentile(50),
        "p95": requests_.histogram.percentile(95),
        "it_p50": tests.histogram.percentile(50),
        "it_p95": tests.histogram.percentile(95),
        "max_tick_gap": max_gap,
        "tick_delay_p95": p95_delay,
        "own_errors": [e.get("message", e.get("error", ""))[:300] for e in own_errors],
    }


def run_locust(workdir: Path, url: str, users: int, seconds: int, processes: int) -> dict:
    python = locust_python()
    locustfile = workdir / "locustfile.py"
    locustfile.write_text(LOCUSTFILE)
    host, path = url.rsplit("/", 1)
    prefix = workdir / f"locust_{users}_{processes}"
    argv = [python, "-m", "locust", "-f", str(locustfile), "--headless", "-u", str(users),
            "-r", str(users), "-t", f"{seconds}s", "--host", host, "--csv", str(prefix),
            "--only-summary", "--stop-timeout", "10"]  # fmt: skip
    if processes > 1:
        argv += ["--processes", str(processes)]
    env = {**os.environ, "BENCH_PATH": "/" + path}
    before = cpu_of_children()
    subprocess.run(argv, env=env, capture_output=True, check=False)
    cpu = cpu_of_children() - before
    with open(f"{prefix}_stats.csv") as fh:
        row = next(r for r in csv.DictReader(fh) if r["Name"] == "Aggregated")
    count = int(row["Request Count"])
    return {
        "requests": count,
        "failures": int(row["Failure Count"]),
        "rate": float(row["Requests/s"]),
        "cpu": cpu,
        "per_cpu": count / cpu if cpu else 0.0,
        "p50": float(row["50%"]),
        "p95": float(row["95%"]),
    }


def requests_alone(url: str, seconds: float) -> dict:
    """requests.get in a loop in this process: what the test's request costs without pytest."""
    import requests

    count, began, cpu = 0, time.monotonic(), time.process_time()
    while time.monotonic() - began < seconds:
        requests.get(url).json()
        count += 1
    used = time.process_time() - cpu
    return {"requests": count, "cpu": used, "per_cpu": count / used if used else 0.0}


def show(name: str, figures: dict) -> None:
    text = ", ".join(
        f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}" for k, v in figures.items()
    )
    print(f"  {name}: {text}  (loadavg {loadavg()})", flush=True)


def verdict(label: str, ok: bool) -> bool:
    print(f"  {'PASS' if ok else 'FAIL'}: {label}", flush=True)
    return ok


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", default="a,b,c")
    parser.add_argument("--seconds-a", type=int, default=30)
    parser.add_argument("--seconds-b", type=int, default=20)
    parser.add_argument("--seconds-c", type=int, default=60)
    args = parser.parse_args()
    only = set(args.only.split(","))
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, loadavg {loadavg()}")
    workdir = Path(tempfile.mkdtemp(prefix="ptd-bench-load-"))
    suite = workdir / "suite"
    suite.mkdir()
    for name, text in PTD_TESTS.items():
        (suite / name).write_text(textwrap.dedent(text))
    servers = Servers()
    ok = True
    try:
        slow = servers.start(PORT_BASE + 1, 0.2)
        fast = servers.start(PORT_BASE + 2, 0.0)
        if "a" in only:
            print(f"(a) 100 users, 0.2 s endpoint, {args.seconds_a} s")
            ptd = run_ptd(suite, "test_get.py", slow, 100, args.seconds_a, 2)
            show("PTD (2 processes)", ptd)
            loc = run_locust(workdir, slow, 100, args.seconds_a, 2)
            show("Locust (2 processes)", loc)
            ok &= verdict("PTD >= 0.9 x Locust", ptd["rate"] >= 0.9 * loc["rate"])
            ok &= verdict("PTD >= 0.8 x 500/s", ptd["rate"] >= 400)
            for q in ("p50", "p95"):
                ok &= verdict(f"{q} within 10 %", abs(ptd[q] - loc[q]) <= 0.1 * loc[q])
        if "b" in only:
            print(f"(b) 0 s endpoint, 2 processes each, {args.seconds_b} s")
            ptd = run_ptd(suite, "test_get.py", fast, 20, args.seconds_b, 2)
            show("PTD requests.get test", ptd)
            loc = run_locust(workdir, fast, 20, args.seconds_b, 2)
            show("Locust HttpUser", loc)
            ok &= verdict("PTD per CPU >= 0.5 x Locust", ptd["per_cpu"] >= 0.5 * loc["per_cpu"])
            print("  where PTD's time goes (iterations per CPU-second, 2 processes, 20 users):")
            for test in ("test_noop.py", "test_session.py"):
                show(test, run_ptd(suite, test, fast, 20, args.seconds_b, 2))
            show("requests.get alone, one thread", requests_alone(fast, args.seconds_b / 2))
        if "c" in only:
            print(f"(c) 500 users, 0.2 s endpoint, {args.seconds_c} s, PTD")
            ptd = run_ptd(suite, "test_get.py", slow, 500, args.seconds_c, 2)
            show("PTD", ptd)
            ok &= verdict("no error of PTD's own", not ptd["own_errors"] and ptd["exit"] == 0)
            ok &= verdict("no failed iteration", ptd["failures"] == 0)
            ok &= verdict("ticks sent within 1 s (p95)", ptd["tick_delay_p95"] <= 1.0)
    finally:
        servers.stop()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
