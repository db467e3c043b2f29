"""Fork-engine workers: xdist-compatible to user code, fork-safe, and never left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from _ptd_inrun.fork.wire import FrameReader, LoopWriter, pack

from runner import procs
from runner.command import build_env
from runner.pool import Pool, RunSpec
from tests.runner.test_fork import GROUPED, both, parallel

WAIT = 30.0

# A pytest-django-style database per worker, and a live HTTP server per worker.
WORKER_SUITE = {
    "conftest.py": """
        import json, os, random, sqlite3, threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from pathlib import Path
        from urllib.request import urlopen

        import pytest

        OUT = Path(__file__).parent / "out"
        OUT.mkdir(exist_ok=True)

        @pytest.fixture(scope="session")
        def db_name(request):
            # What pytest-django does: suffix the test database with the xdist worker id.
            suffix = getattr(request.config, "workerinput", {}).get("workerid")
            return f"test_{suffix}" if suffix else "test"

        @pytest.fixture(scope="session")
        def db(db_name, worker_id):
            assert db_name == f"test_{worker_id}"
            path = OUT / f"{db_name}.sqlite3"
            assert not path.exists(), "session fixtures run once per worker"
            conn = sqlite3.connect(path)
            conn.execute("create table seen (nodeid text)")
            yield conn
            conn.close()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                body = json.dumps({"worker": os.environ.get("PYTEST_XDIST_WORKER"),
                                   "pid": os.getpid()}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        @pytest.fixture(scope="session")
        def live_server(worker_id):
            server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            with open(OUT / "sessions.log", "a") as fh:
                fh.write(f"{worker_id} {os.getpid()}\\n")
            yield f"http://127.0.0.1:{server.server_port}"
            server.shutdown()

        @pytest.fixture
        def record(request, db, live_server, worker_id, testrun_uid, tmp_path):
            with urlopen(live_server) as resp:
                served = json.load(resp)
            db.execute("insert into seen values (?)", (request.node.nodeid,))
            db.commit()
            info = {
                "worker_id": worker_id,
                "testrun_uid": testrun_uid,
                "env": {k: v for k, v in os.environ.items() if k.startswith("PYTEST_XDIST")},
                "workerinput": dict(getattr(request.config, "workerinput", {})),
                "server": live_server,
                "served": served,
                "pid": os.getpid(),
                "random": random.random(),
                "tmp_path": str(tmp_path),
            }
            name = request.node.name.replace("/", "_")
            (OUT / f"{name}.json").write_text(json.dumps(info, default=str))
    """,
    "test_workers.py": """
        import pytest

        @pytest.mark.parametrize("i", range(8))
        def test_uses_the_worker(record, i):
            pass
    """,
}


def check_worker_suite(root: Path, workers: int = 2) -> dict[str, list[dict]]:
    out = root / "out"
    infos = [json.loads(p.read_text()) for p in sorted(out.glob("test_uses_the_worker*.json"))]
    assert len(infos) == 8
    by_worker: dict[str, list[dict]] = {}
    for info in infos:
        by_worker.setdefault(info["worker_id"], []).append(info)
    assert set(by_worker) <= {f"gw{i}" for i in range(workers)} and len(by_worker) >= 2
    assert len({i["testrun_uid"] for i in infos}) == 1
    for wid, group in by_worker.items():
        for info in group:
            assert info["env"] == {
                "PYTEST_XDIST_WORKER": wid,
                "PYTEST_XDIST_WORKER_COUNT": str(workers),
                "PYTEST_XDIST_TESTRUNUID": info["testrun_uid"],
            }
            wi = info["workerinput"]
            assert (wi["workerid"], wi["workercount"], wi["testrunuid"]) == (
                wid,
                workers,
                info["testrun_uid"],
            )
            # The live server of this worker, served from this worker's process.
            assert info["served"] == {"worker": wid, "pid": info["pid"]}
            assert f"popen-{wid}" in info["tmp_path"]
        assert len({i["server"] for i in group}) == 1 and len({i["pid"] for i in group}) == 1
        assert (out / f"test_{wid}.sqlite3").exists()
    assert len({i["server"] for i in infos}) == len(by_worker)
    # random is seeded differently in each worker
    firsts = [group[0]["random"] for group in by_worker.values()]
    assert len(set(firsts)) == len(firsts)
    sessions = (out / "sessions.log").read_text().split()
    assert sorted(sessions[::2]) == sorted(by_worker), "one live server per worker"
    return by_worker


@both
def test_workers_look_like_xdist_workers(suite, engine, tmp_path):
    run = suite(WORKER_SUITE, *parallel(engine))
    assert run.returncode == 0, run.output
    check_worker_suite(tmp_path / "suite0")


def test_fork_engine_without_xdist_installed(suite, tmp_path):
    """worker_id / testrun_uid fixtures and the xdist_group marker come from the engine."""
    files = {
        **WORKER_SUITE,
        **GROUPED,
        "test_no_xdist.py": """
            import sys

            def test_no_xdist_here(request):
                pm = request.config.pluginmanager
                assert not pm.is_registered(sys.modules.get("xdist.plugin"))
                assert pm.has_plugin("ptd-fork-compat")
        """,
    }
    run = suite(
        files, "-p", "no:xdist", "--ptd-workers", "2", "--ptd-dist", "loadgroup", "--strict-markers"
    )
    assert run.returncode == 0, run.output
    check_worker_suite(tmp_path / "suite0")
    db = {t["worker"] for t in run.tests if "test_db_" in t["nodeid"]}
    assert len(db) == 1


def test_fork_engine_honours_xdists_dist_option(suite):
    run = suite(GROUPED, "--ptd-workers", "2", "--dist", "loadfile")
    assert run.returncode == 0, run.output
    assert len(run.tests) == 11
    groups: dict[str, set[str]] = {}
    for t in run.tests:
        groups.setdefault(t["nodeid"].split("::")[0], set()).add(t["worker"])
    assert all(len(w) == 1 for w in groups.values()), groups


def test_maxfail_stops_the_run(suite):
    files = {
        "test_x.py": """
            import pytest

            @pytest.mark.parametrize("i", range(40))
            def test_n(i):
                assert i != 0
        """
    }
    run = suite(files, *parallel("fork"), "-x")
    assert run.returncode == 1, run.output
    assert "stopping after 1 failures" in run.output
    assert 1 <= len(run.tests) < 40
    assert run.of_type("session_finish")[0]["exitstatus"] == 1


HANGING = {
    "test_hang.py": """
        import os, time
        from pathlib import Path

        import pytest

        @pytest.mark.parametrize("i", range(4))  # two per worker: each knows its next
        def test_hangs(i, worker_id):
            Path(f"{worker_id}.pid").write_text(str(os.getpid()))
            time.sleep(120)
    """
}


def _wait_for_pids(root: Path, n: int) -> list[int]:
    deadline = time.monotonic() + WAIT
    while len(files := list(root.glob("gw*.pid"))) < n or not all(f.read_text() for f in files):
        assert time.monotonic() < deadline, "workers never started their tests"
        time.sleep(0.02)
    return [int(f.read_text()) for f in files]


def _wait_group_gone(pgid: int) -> None:
    deadline = time.monotonic() + WAIT
    while procs.group_alive(pgid):
        assert time.monotonic() < deadline, f"process group {pgid} still alive"
        time.sleep(0.02)


class _Sink:
    def __init__(self):
        self.started = threading.Event()
        self.pid = None

    def run_started(self, run_id, pid, started_at):
        self.pid = pid
        self.started.set()

    def handle_events(self, run_id, events):
        pass

    def run_finished(self, run_id, outcome):
        pass


@pytest.mark.parametrize("how", ["cancel", "timeout"])
def test_cancel_and_timeout_end_the_controller_and_every_worker(tmp_path, fast_pytest_cmd, how):
    from tests.runner.conftest import write_suite

    write_suite(tmp_path, HANGING)
    argv, env = fast_pytest_cmd
    sink = _Sink()
    pool = Pool(sink, grace=2.0)
    try:
        timeout = 5.0 if how == "timeout" else None  # long enough for both workers to start
        spec = RunSpec(
            1, [*argv, "--ptd-workers", "2"], str(tmp_path), env, timeout, str(tmp_path / "run.log")
        )
        pool.submit(spec)
        assert sink.started.wait(WAIT)
        workers = _wait_for_pids(tmp_path, 2)
        assert sink.pid not in workers and all(os.getpgid(p) == sink.pid for p in workers)
        if how == "cancel":
            assert pool.cancel(1)
        outcome = pool.wait(1, WAIT)
        assert outcome is not None and outcome.reason == ("cancelled" if how == "cancel" else how)
        _wait_group_gone(sink.pid)
    finally:
        pool.shutdown(timeout=WAIT)


def test_workers_die_with_the_controller(tmp_path, fast_pytest_cmd):
    from tests.runner.conftest import write_suite

    write_suite(tmp_path, HANGING)
    argv, env = fast_pytest_cmd
    proc = subprocess.Popen(
        [*argv, "--ptd-workers", "2"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        _wait_for_pids(tmp_path, 2)
        os.kill(proc.pid, signal.SIGKILL)  # only the controller: no killpg
        proc.wait(WAIT)
        _wait_group_gone(proc.pid)
    finally:
        procs.signal_group(proc.pid, signal.SIGKILL)


def test_frames_survive_any_split():
    data = pack([("run", [1, 2, 3])]) + pack([("shutdown",)]) + pack({"big": "x" * 70000})
    for step in (1, 7, 4096, len(data)):
        reader = FrameReader()
        got = []
        for i in range(0, len(data), step):
            got += reader.feed(data[i : i + step])
        assert got == [[("run", [1, 2, 3])], [("shutdown",)], {"big": "x" * 70000}]


def test_loop_writer_never_blocks_and_flushes_on_close():
    r, w = os.pipe()
    writer = LoopWriter(w, coalesce=0)
    big = "y" * 1000
    for i in range(200):  # ~200 kB: more than a pipe holds
        writer.emit({"type": "test", "i": i, "pad": big})
        writer.flush()
    assert writer.pending  # the pipe is full; nothing blocked
    chunks = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(lambda: os.read(r, 65536), b"")))
    reader.start()
    writer.close()
    reader.join(WAIT)
    os.close(r)
    lines = b"".join(chunks).decode().splitlines()
    assert [json.loads(line)["i"] for line in lines] == list(range(200))


def test_build_env_gives_the_fork_engine_its_plugin(tmp_path):
    (tmp_path / "test_a.py").write_text("def test_a(worker_id):\n    assert worker_id == 'gw0'\n")
    env = build_env(os.environ, {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}, None, None)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "_ptd_inrun.plugin", "--ptd-workers", "1", "-q"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
