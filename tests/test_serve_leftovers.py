"""`serve` killed with SIGKILL mid-run, its watchdog too: the run does not go on, and the next
start ends what the run left behind and marks it interrupted (real processes, in /proc)."""

from __future__ import annotations

import os
import signal
import sys
import textwrap
import time
from pathlib import Path

import pytest
import requests

from tests.runner.test_run_processes import CHILD, kill_left, wait_gone
from tests.runner.test_runner_pool import wait_file
from tests.servers import ServeProcess

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def watchdog_of(pid: int) -> int:
    """The pid of the watchdog of process ``pid`` (runner.watchdog)."""
    for entry in os.listdir("/proc"):
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"runner.watchdog" in argv and str(pid).encode() in argv:
            return int(entry)
    raise AssertionError(f"process {pid} has no watchdog")


def test_a_run_of_a_killed_server_ends_and_its_leftovers_go_at_the_next_start(tmp_path):
    suite = tmp_path / "leaky"
    suite.mkdir()
    child_file, run_file = tmp_path / "child", tmp_path / "run"
    (suite / "test_leak.py").write_text(
        textwrap.dedent(f"""
        import os, subprocess, sys, time
        from pathlib import Path

        def test_leaks_then_hangs():
            Path({str(run_file)!r}).write_text(str(os.getpid()))
            subprocess.Popen([sys.executable, "-c", {CHILD!r}, {str(child_file)!r}])
            time.sleep(120)
        """)
    )
    server = ServeProcess(tmp_path / "data").start()
    child = None
    try:
        api = requests.Session()
        api.headers["Authorization"] = f"Bearer {server.create_token()}"
        made = api.post(f"{server.url}/api/suites", json={"name": "leaky", "path": str(suite)})
        assert made.status_code == 201, made.text
        made = api.post(f"{server.url}/api/runs", json={"suite": "leaky", "workers": 1})
        assert made.status_code == 201, made.text
        run_id = made.json()["id"]
        run_pid = int(wait_file(run_file, timeout=60))
        child = int(wait_file(child_file, timeout=30).split()[0])
        # Both at once (the OOM killer, a kill -9 of both): only what a run leaves behind
        # without any watchdog is left for the next start.
        os.kill(watchdog_of(server.proc.pid), signal.SIGKILL)
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait()
        wait_gone(run_pid, timeout=10)  # the run dies with its server: no timer is left
        # Its child left the run's session: the next server to start ends it.

        began = time.monotonic()
        again = ServeProcess(tmp_path / "data", env=server.env).start()
        try:
            wait_gone(child, timeout=10)
            assert time.monotonic() - began < 70
            run = api.get(f"{again.url}/api/runs/{run_id}", timeout=10).json()
            assert run["status"] == "interrupted", run
        finally:
            assert again.stop() == 0
    finally:
        server.stop()
        if child:
            kill_left(child)
