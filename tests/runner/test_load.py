"""The load engine (``_ptd_inrun.load``), for real: a suite whose session fixture starts a
threaded HTTP service (50 ms per request), run by pytest with the in-run plugin in load mode.

The suite's tests write their own raw timings (one line per request, measured around
``requests.get``) and their fixtures' setups to files; the events must agree with them.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from _ptd_inrun.load.histogram import Entry
from _ptd_inrun.load.http import template
from _ptd_inrun.load.process import LoadProcess
from _ptd_inrun.load.recorder import Recorder

from runner.command import PLUGIN_MODULE, build_argv, build_env
from tests.paths import PYCACHE_DIR
from tests.runner.conftest import FAST_ENV, FAST_PLUGINS, run_pytest, write_suite

SERVICE = """
import os, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

HERE = os.path.dirname(__file__)


def note(name, text):
    with open(os.path.join(HERE, name), "a") as fh:
        fh.write(text + "\\n")


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.startswith("/broken/"):
            body = b"broken"
            self.send_response(500)
        else:
            time.sleep(float(os.environ.get("DELAY", "0.05")))
            body = b'{"code": 1}'
            self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="session")
def service():
    note("service_starts", str(os.getpid()))
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield "http://127.0.0.1:%d" % server.server_address[1]
    server.shutdown()
    note("service_stops", str(os.getpid()))


@pytest.fixture
def client(service):
    note("client_setups", str(os.getpid()))
    yield service
    note("client_teardowns", str(os.getpid()))
"""

TESTS = """
import time
import uuid

import requests

from conftest import note


def timed_get(url):
    began = time.perf_counter()
    response = requests.get(url, timeout=10)
    note("raw_ms", str((time.perf_counter() - began) * 1000.0))
    note("elapsed_ms", str(response.elapsed.total_seconds() * 1000.0))
    return response


def test_item(client):
    response = timed_get(client + "/items/%d" % time.perf_counter_ns())
    assert response.status_code == 200
    assert response.json()["code"] == 1
    note("iterations_done", "item")


def test_order(client):
    response = timed_get(client + "/orders/%s/lines" % uuid.uuid4())
    assert response.status_code == 200
    note("iterations_done", "order")
"""

BROKEN = """
import requests


def test_broken(service):
    response = requests.get(service + "/broken/0123456789abcdef0123")
    assert response.status_code == 200


def test_refused():
    requests.get("http://127.0.0.1:9/nothing", timeout=2)
"""


def load_args(**kw) -> list[str]:
    """The load options exactly as the runner builds them (runner.command.build_argv)."""
    argv = build_argv("python", workers=kw.pop("processes", 1), mode="load", **kw)
    return argv[argv.index("--color=no") + 1 :]


def lines(root: Path, name: str) -> list[str]:
    path = root / name
    return path.read_text().split() if path.exists() else []


def merged(events: list[dict], part: str) -> dict[str, Entry]:
    out: dict[str, Entry] = {}
    for tick in events:
        if tick["type"] == "load_tick":
            for name, data in tick[part].items():
                out.setdefault(name, Entry()).merge(Entry.from_dict(data))
    return out


def check_ticks(events: list[dict]) -> None:
    """At most one tick per second per process; seconds count from load_start."""
    seen = set()
    for tick in (e for e in events if e["type"] == "load_tick"):
        key = (tick["process"], tick["second"])
        assert key not in seen
        seen.add(key)
        assert tick["users"] >= 0


@pytest.fixture
def service_suite(tmp_path):
    return write_suite(tmp_path, {"conftest.py": SERVICE, "test_api.py": TESTS})


def test_counts_and_percentiles_agree_with_the_raw_timings(service_suite):
    run = run_pytest(service_suite, *load_args(users=6, processes=2, iterations=5), timeout=90)
    assert run.returncode == 0, run.output
    (start,) = run.of_type("load_start")
    assert start["users"] == 6 and start["processes"] == 2 and start["iterations"] == 5
    assert start["tests"] == ["test_api.py::test_item", "test_api.py::test_order"]
    assert [e["reason"] for e in run.of_type("load_stop")] == ["iterations"]
    assert not run.tests and not run.of_type("load_error"), run.of_type("load_error")[:1]
    check_ticks(run.events)
    tests = merged(run.events, "tests")
    # 6 users x 5 passes over 2 tests: exactly, each once per pass.
    assert {k: e.count for k, e in tests.items()} == {
        "test_api.py::test_item": 30,
        "test_api.py::test_order": 30,
    }
    requests = merged(run.events, "requests")
    assert set(requests) == {"GET /items/{id}", "GET /orders/{id}/lines"}
    assert all(e.count == 30 and not e.failures and not e.exceptions for e in requests.values())
    everything = Entry()
    for entry in requests.values():
        everything.merge(entry)
    raw = sorted(float(v) for v in lines(service_suite, "raw_ms"))
    elapsed = sorted(float(v) for v in lines(service_suite, "elapsed_ms"))
    assert len(raw) == len(elapsed) == everything.count == 60
    for q in (50, 90, 95, 99):
        rank = max(0, -(-len(raw) * q // 100) - 1)
        # The engine times Session.send: more than requests' own response.elapsed (sent to
        # headers parsed), less than the test's timing around requests.get (which also makes
        # a Session and prepares the request); the histogram rounds to 2 significant digits.
        value = everything.histogram.percentile(q)
        # (The gap to the test's own timing is the GIL: 12 threads on a busy 2-core box.)
        assert elapsed[rank] * 0.95 <= value <= raw[rank] * 1.05, (q, elapsed[rank], raw[rank])
    assert everything.min_ms <= raw[0] and everything.max_ms <= raw[-1]
    assert everything.min_ms >= 50.0  # the service's 50 ms
    # An iteration is the whole test: setup, request, checks, teardown.
    assert tests["test_api.py::test_item"].min_ms >= requests["GET /items/{id}"].min_ms
    # A session fixture once per load process; function fixtures once per iteration.
    starts = lines(service_suite, "service_starts")
    assert len(starts) == 2 and len(set(starts)) == 2
    assert sorted(lines(service_suite, "service_stops")) == sorted(starts)
    assert len(lines(service_suite, "client_setups")) == 60
    assert len(lines(service_suite, "client_teardowns")) == 60


def test_a_duration_is_honoured(service_suite):
    run = run_pytest(service_suite, *load_args(users=3, processes=1, duration=2), timeout=60)
    assert run.returncode == 0, run.output
    (start,) = run.of_type("load_start")
    (stop,) = run.of_type("load_stop")
    assert stop["reason"] == "duration"
    # Tolerance: no iteration starts after 2 s; the running ones end (50 ms), the last
    # deltas are flushed and the shared fixtures torn down: within 2 s + 1 s.
    assert 2.0 <= stop["time"] - start["time"] <= 3.0
    check_ticks(run.events)
    tests = merged(run.events, "tests")
    done = len(lines(service_suite, "iterations_done"))
    assert sum(e.count for e in tests.values()) == done
    # 3 users, ~50 ms per iteration, 2 s: about 120 iterations (at least half on a busy box).
    assert 60 <= done <= 125
    ticks = [e for e in run.events if e["type"] == "load_tick"]
    assert max(t["users"] for t in ticks) == 3 and ticks[-1]["users"] == 0


def test_users_start_at_the_spawn_rate(service_suite):
    args = load_args(users=4, processes=2, spawn_rate=4, duration=2)
    run = run_pytest(service_suite, *args, timeout=60)
    assert run.returncode == 0, run.output
    ticks = [e for e in run.events if e["type"] == "load_tick"]
    # 4 users at 4/s: the last starts 0.75 s after load_start, so second 1 sees them all,
    # and second 0 (never a tick: the first is sent at 1 s) nothing more.
    by_second: dict[int, int] = {}
    for tick in ticks:
        by_second[tick["second"]] = by_second.get(tick["second"], 0) + tick["users"]
    assert by_second[1] == 4


def test_errors_are_grouped_by_endpoint_and_message(tmp_path):
    root = write_suite(tmp_path, {"conftest.py": SERVICE, "test_broken.py": BROKEN})
    run = run_pytest(root, *load_args(users=2, processes=1, iterations=3), timeout=60)
    assert run.returncode == 0, run.output
    groups: dict[tuple, int] = {}
    for error in run.of_type("load_error"):
        key = (error["process"], error["name"], error["kind"], error["error"])
        groups[key] = groups.get(key, 0) + error["count"]
        assert 0 < len(error["traceback"]) <= 8 * 1024
    refused = [k for k in groups if k[1] == "test_broken.py::test_refused"]
    assert len(refused) == 1 and refused[0][2] == "exception"
    assert refused[0][3].startswith("ConnectionError: ")
    assert groups == {
        ("p0", "GET /broken/{id}", "failure", "HTTP 500 Internal Server Error"): 6,
        ("p0", "test_broken.py::test_broken", "failure", "AssertionError: assert 500 == 200"): 6,
        ("p0", "GET /nothing", "exception", refused[0][3]): 6,
        refused[0]: 6,
    }
    tests = merged(run.events, "tests")
    assert (tests["test_broken.py::test_broken"].failures, tests["test_broken.py::test_broken"]
            .exceptions) == (6, 0)  # fmt: skip
    assert tests["test_broken.py::test_refused"].exceptions == 6
    requests = merged(run.events, "requests")
    assert requests["GET /broken/{id}"].failures == 6
    assert requests["GET /nothing"].exceptions == 6


def stream_run(
    root: Path, args: list[str], env: dict
) -> tuple[subprocess.Popen, list[dict], threading.Event]:
    """Start the load in its own process group, as the pool does; events as they come."""
    r, w = os.pipe()
    # PYTHONFAULTHANDLER: a run that does not end is sent SIGABRT (ended), and every process
    # of it writes where each of its threads stood into the log (see ``ended``).
    run_env = build_env(
        os.environ, {**FAST_ENV, "PYTHONFAULTHANDLER": "1", **env}, w, None, PYCACHE_DIR
    )
    argv = [sys.executable, "-m", "pytest", "-p", PLUGIN_MODULE, "-p", "no:cacheprovider",
            *FAST_PLUGINS, *args]  # fmt: skip
    log = open(root / "run.log", "wb")  # noqa: SIM115 - the child's, closed here at once
    proc = subprocess.Popen(
        argv, cwd=root, env=run_env, pass_fds=(w,), start_new_session=True,
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    log.close()
    os.close(w)
    events: list[dict] = []
    ticked = threading.Event()

    def read() -> None:
        with os.fdopen(r, "rb") as fh:
            for line in fh:
                event = json.loads(line)
                events.append(event)
                if event["type"] == "load_tick":
                    ticked.set()

    proc.reader = threading.Thread(target=read, daemon=True)  # ends at the pipe's end
    proc.reader.start()
    return proc, events, ticked


def ended(proc: subprocess.Popen, root: Path, timeout: float) -> int:
    """The run's exit status; a run still there after ``timeout`` fails the test with where
    each thread of each of its processes stood (faulthandler, on SIGABRT)."""
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGABRT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)
        text = (root / "run.log").read_text(errors="replace")
        pytest.fail(f"the run did not end within {timeout:g} s; its log:\n{text[-20000:]}")


def test_cancel_stops_gracefully(service_suite):
    """SIGTERM to the run's process group (the pool's cancel): running iterations finish,
    the last deltas and load_stop are sent, pytest exits 0, nothing is left behind."""
    args = load_args(users=4, processes=2, duration=60)
    proc, events, ticked = stream_run(service_suite, args, {"DELAY": "0.3"})
    try:
        assert ticked.wait(30), "no load_tick within 30 s"
        cancelled = time.monotonic()
        os.killpg(proc.pid, signal.SIGTERM)
        assert ended(proc, service_suite, 15) == 0
        took = time.monotonic() - cancelled
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert took < 5.0  # iterations of 0.3 s finish, the service stops, the process exits
    proc.reader.join(10)  # every line the run wrote (its end closed the pipe)
    assert not proc.reader.is_alive()
    assert [e["reason"] for e in events if e["type"] == "load_stop"] == ["cancelled"]
    tests = merged(events, "tests")
    # Graceful: every iteration the tests completed was counted, none was cut short.
    done = len(lines(service_suite, "iterations_done"))
    assert sum(e.count for e in tests.values()) == done > 0
    errors = [e["traceback"] for e in events if e["type"] == "load_error"]
    assert not any(e.failures or e.exceptions for e in tests.values()), errors[:1]
    starts = lines(service_suite, "service_starts")
    assert sorted(lines(service_suite, "service_stops")) == sorted(starts)
    for pid in starts:
        assert not Path(f"/proc/{pid}").exists()
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)


def test_a_second_stop_signal_inside_the_first_ones_handler_returns_at_once():
    """A cancel reaches a load process twice (the pool's killpg, then its controller's
    SIGTERM). Seen in CI: the second handler ran while the first held its stop Event's lock,
    inside Event.set, and waited on it for ever. Here the second signal lands right there."""
    process = LoadProcess.__new__(LoadProcess)
    process.cancelled, process.stop = False, threading.Event()
    cond = process.stop._cond
    notify_all = cond.notify_all

    def interrupted() -> None:  # the Event's lock is held here
        process._on_signal(signal.SIGTERM, None)
        notify_all()

    cond.notify_all = interrupted
    handler = threading.Thread(target=process._on_signal, args=(signal.SIGTERM, None))
    handler.daemon = True
    handler.start()
    handler.join(5)
    assert not handler.is_alive(), "the second handler waited on the first one's lock"
    assert process.cancelled and process.stop.is_set()


def test_usage_and_collection_errors_exit_non_zero(tmp_path):
    root = write_suite(tmp_path, {"test_a.py": "def test_a():\n    pass\n"})
    run = run_pytest(root, "--ptd-load-users", "2")
    assert run.returncode == 4 and "--ptd-load-duration or --ptd-load-iterations" in run.output
    broken = write_suite(tmp_path / "b", {"test_b.py": "import nowhere_to_be_found\n"})
    run = run_pytest(broken, *load_args(users=2, iterations=1))
    assert run.returncode == 2 and not run.of_type("load_start")


def test_endpoint_templates():
    assert template("http://h/items/17") == "/items/{id}"
    assert template("http://h/a/3f2b8c9e-1d2a-4b5c-9d8e-7f6a5b4c3d2e/b?x=1") == "/a/{id}/b"
    assert template("http://h/blobs/0123456789abcdef01/raw") == "/blobs/{id}/raw"
    assert template("http://h/users/alice/v2") == "/users/alice/v2"
    assert template("http://h") == "/"


def test_the_recorder_sends_deltas_once_a_second():
    recorder = Recorder("p0", start=1000.0)
    assert recorder.take(now=1000.5) == []
    recorder.set_users(2)
    recorder.test("t::a", 10.0, None)
    recorder.test("t::a", 30.0, "failure", "AssertionError: no", "tb")
    recorder.request("GET /x", 5.0, None)
    tick, error = recorder.take(now=1001.02)
    assert tick["second"] == 1 and tick["users"] == 2
    assert Entry.from_dict(tick["tests"]["t::a"]).figures()["count"] == 2
    assert error["count"] == 1 and error["error"] == "AssertionError: no"
    assert recorder.take(now=1001.9) == []  # nothing new
    recorder.test("t::a", 20.0, "failure", "AssertionError: no", "other tb")
    assert recorder.take(now=1001.95) == []  # same second: kept for the next tick
    tick, error = recorder.take(now=1002.03)
    assert tick["second"] == 2 and tick["tests"]["t::a"]["count"] == 1
    assert error["count"] == 1 and error["traceback"] == "tb"  # the first example
    recorder.test("t::a", 20.0, None)
    (tick,) = recorder.take(now=1002.5, final=True)
    assert tick["second"] == 3  # never twice the same second


def test_a_process_with_users_ticks_every_second_even_when_none_finished_anything():
    """Users in a 20 s request finish nothing for 20 s: their process must still say they are
    there, or the run's users per second dropped and seconds went missing from its series."""
    recorder = Recorder("p0", start=1000.0)
    recorder.set_users(3)
    for second in (1, 2, 3):
        (tick,) = recorder.take(now=1000.0 + second + 0.02)
        assert (tick["second"], tick["users"], tick["tests"]) == (second, 3, {})
    recorder.set_users(0)
    (tick,) = recorder.take(now=1004.02)
    assert tick["users"] == 0  # said once
    assert recorder.take(now=1005.02) == []


KEEP_ALIVE = """
import os, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        with open(os.path.join(os.path.dirname(__file__), "connections"), "a") as fh:
            fh.write("c\\n")

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@pytest.fixture(scope="session")
def service():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield "http://127.0.0.1:%d/" % server.server_address[1]
    server.shutdown()


def test_get(service):
    assert requests.get(service).text == "ok"


def test_own_session(service):
    with requests.Session() as session:
        session.cookies.set("seen", "1")
        assert session.get(service).status_code == 200
    assert not requests.Session().cookies  # a new session is still empty
"""


def test_each_user_keeps_its_connections_alive(tmp_path):
    """requests.get makes a Session per call; a user's sessions share its connections."""
    root = write_suite(tmp_path, {"test_keep.py": KEEP_ALIVE})
    run = run_pytest(root, *load_args(users=3, processes=1, iterations=10), timeout=60)
    assert run.returncode == 0, run.output
    assert sum(e.count for e in merged(run.events, "requests").values()) == 60
    assert not run.of_type("load_error")
    assert len(lines(root, "connections")) == 3  # one per user, not one per request


def test_the_pool_cancels_a_load_gracefully(service_suite):
    """Through runner.pool, as the dashboard runs it: the pool's own grace (0.5 s here) would
    kill iterations of 0.3 s; a load run's RunSpec asks for LOAD_GRACE instead."""
    from runner.pool import Pool, RunSpec
    from runner.records import LOAD_GRACE
    from tests.runner.test_runner_pool import Recorder as Sink

    sink = Sink()
    pool = Pool(sink, max_concurrent=1, batch_interval=0.05, grace=0.5)
    argv = build_argv(sys.executable, workers=2, mode="load", users=4, duration=60)
    env = build_env(os.environ, {**FAST_ENV, "DELAY": "0.3"}, None, None, PYCACHE_DIR)
    log = str(service_suite / "run.log")
    try:
        pool.submit(RunSpec(1, argv, str(service_suite), env, None, log, grace=LOAD_GRACE))
        sink.wait_for(lambda c: c[0] == "events" and any(e["type"] == "load_tick" for e in c[2]))
        assert pool.cancel(1) is True
        outcome = pool.wait(1, 30)
    finally:
        pool.shutdown(cancel_running=True, timeout=30)
    assert outcome.reason == "cancelled" and outcome.returncode == 0
    events = sink.events(1)
    assert [e["reason"] for e in events if e["type"] == "load_stop"] == ["cancelled"]
    assert events[-1]["type"] == "session_finish"
    done = len(lines(service_suite, "iterations_done"))
    assert sum(e.count for e in merged(events, "tests").values()) == done > 0


def test_percentiles_stay_within_the_exact_extremes():
    entry = Entry()
    entry.add(139.1)  # its bucket reads 140 ms
    entry.add(4.74)  # and this one 4.7 ms
    figures = entry.figures()
    assert figures["p95_ms"] == 139.1 and figures["p50_ms"] == 4.74
