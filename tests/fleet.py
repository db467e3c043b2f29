"""Helpers of the runs-across-machines tests: a served dashboard, agents as processes, a suite
copied per machine (tests/test_agents.py)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from tests.servers import ROOT, ServeProcess, isolated_env

BROKER = os.environ.get("PTD_TEST_BROKER_URL", "redis://127.0.0.1:6379/0")
LOST_SECONDS = 3.0
HEARTBEAT = 0.3

SUITE = {
    "pytest.ini": "[pytest]\n",
    "tests/__init__.py": "",
    "tests/test_mix.py": """
        import time
        import pytest

        @pytest.fixture
        def broken():
            raise RuntimeError("fixture broke")

        @pytest.mark.parametrize("i", range(12))
        def test_pass(i):
            time.sleep(0.03)

        def test_fail():
            assert 1 == 2

        @pytest.mark.skip(reason="not here")
        def test_skip():
            pass

        @pytest.mark.xfail(reason="known")
        def test_xfail():
            assert False

        @pytest.mark.xfail(reason="fixed since")
        def test_xpass():
            pass

        def test_error(broken):
            pass
    """,
    "tests/test_files.py": """
        import time
        import pytest

        @pytest.mark.parametrize("i", range(6))
        def test_file_one(i):
            time.sleep(0.02)
    """,
    "tests/test_slow.py": """
        import pathlib
        import time
        import pytest

        @pytest.mark.parametrize("i", range(6))
        def test_slow(i):
            running = pathlib.Path(__file__).parent / f"running-{i}"  # seen by the tests
            running.touch()
            time.sleep(1.0)
            running.unlink()
    """,
}


def write_suite(path: Path) -> Path:
    for name, text in SUITE.items():
        file = path / name
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(textwrap.dedent(text))
    return path


def broker_up() -> bool:
    """Whether the tests' broker (``PTD_TEST_BROKER_URL``, Redis by default) takes connections."""
    url = urlsplit(BROKER)
    port = url.port or (5672 if url.scheme in ("amqp", "pyamqp") else 6379)
    try:
        with socket.create_connection((url.hostname or "127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


# Skip the agents' tests when no broker answers, unless CI says one must (PTD_REQUIRE_BROKER):
# then they run, and fail loudly, rather than pass by skipping everything.
needs_broker = pytest.mark.skipif(
    not os.environ.get("PTD_REQUIRE_BROKER") and not broker_up(),
    reason=f"needs the broker at {BROKER} (PTD_TEST_BROKER_URL)",
)


class Fleet:
    """A dashboard served on its own data, a staff token, a suite and its agents."""

    def __init__(self, tmp: Path, maker=None, lost_seconds: float = LOST_SECONDS):
        self.tmp = tmp
        self.maker = maker or write_suite
        self.tag = uuid.uuid4().hex[:6]
        env = isolated_env(tmp / "data")
        env.update(
            PTD_BROKER_URL=BROKER,
            PTD_AGENT_LOST_SECONDS=str(lost_seconds),
            PTD_AGENT_WAIT_SECONDS="2",
            PTD_WARM_START="0",
        )
        self.server = ServeProcess(tmp / "data", env=env)
        self.base = self.maker(tmp / "registered")
        self.copies: dict[str, Path] = {}
        self.agents: dict[str, subprocess.Popen] = {}
        self.token = ""
        self.http = requests.Session()

    def start(self, machines: int = 3, workers: int = 2) -> Fleet:
        self.server.start()
        self.token = self.server.create_token("admin")
        self.http.headers["Authorization"] = f"Bearer {self.token}"
        self.post("/api/suites", {"name": "mix", "path": str(self.base)})
        for i in range(machines):
            self.start_agent(f"m{i}-{self.tag}", workers)
        self.wait(lambda: len(self.idle()) == machines, 30, "agents to say hello")
        return self

    def start_agent(self, name: str, workers: int = 2, queue: str = "") -> subprocess.Popen:
        copy = self.copies.get(name) or self.maker(self.tmp / "machines" / name)
        self.copies[name] = copy
        env = {
            **os.environ,
            "PTD_SERVER": self.server.url,
            "PTD_TOKEN": self.token,
            "PTD_BROKER_URL": BROKER,
            "PTD_AGENT_HEARTBEAT": str(HEARTBEAT),
            "PTD_AGENT_LOGLEVEL": "INFO",
        }
        env.pop("DJANGO_SETTINGS_MODULE", None)
        proc = subprocess.Popen(
            [sys.executable, "-m", "runner.agent", "--name", name, "--workers", str(workers),
             "--path-map", f"{self.base}={copy}", *(["--queue", queue] if queue else [])],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(self.tmp / f"agent-{name}.log", "w"),  # noqa: SIM115
            start_new_session=True,  # its process group: a machine to pull the plug on
        )  # fmt: skip
        self.agents[name] = proc
        return proc

    def kill_agent(self, name: str) -> None:
        proc = self.agents[name]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)

    @contextmanager
    def serving(self, machines: int = 3) -> Iterator[Fleet]:
        """A module fixture's body: the fleet up, then down, leaving no shard process."""
        try:
            self.start(machines=machines)
            yield self
        finally:
            self.stop()
        assert self.processes_in_copies() == [], "a process of a shard outlived its agent"

    def stop(self) -> None:
        for proc in self.agents.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.agents.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.server.stop()

    # -- the API ---------------------------------------------------------------------------

    def post(self, path: str, body: dict) -> dict:
        response = self.http.post(self.server.url + path, json=body, timeout=30)
        assert response.status_code < 300, response.text
        return response.json()

    def get(self, path: str) -> dict | list:
        response = self.http.get(self.server.url + path, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()

    def alive(self) -> list[str]:
        return [n for n, p in self.agents.items() if p.poll() is None]

    def results_all(self, run_id: int) -> list[dict]:
        items, offset = [], 0
        while True:
            page = self.get(f"/api/runs/{run_id}/results?limit=1000&offset={offset}")["items"]
            items += page
            if len(page) < 1000:
                return items
            offset += 1000

    def idle(self) -> list[str]:
        return [a["name"] for a in self.get("/api/agents") if a["state"] == "idle"]

    def launch(self, **options) -> int:
        return self.post("/api/runs", {"suite": "mix", **options})["id"]

    def wait_run(self, run_id: int, timeout: float = 30) -> dict:
        return self.wait(
            lambda: (
                (r := self.get(f"/api/runs/{run_id}"))["status"] not in ("queued", "running") and r
            ),
            timeout,
            f"run {run_id} to end",
        )

    def results(self, run_id: int) -> list[dict]:
        return self.get(f"/api/runs/{run_id}/results?limit=1000")["items"]

    @staticmethod
    def wait(condition, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}")

    def machines_busy(self) -> set[str]:
        """The machines with a process in their copy of the suite."""
        busy = set()
        for pid in self.processes_in_copies():
            try:
                cwd = os.readlink(f"/proc/{pid}/cwd")
            except OSError:
                continue
            busy |= {n for n, p in self.copies.items() if cwd.startswith(str(p.resolve()))}
        return busy

    def processes_in_copies(self) -> list[int]:
        """Processes whose working directory is one of the machines' copies of the suite."""
        roots = [str(p.resolve()) for p in self.copies.values()]
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                cwd = os.readlink(f"/proc/{entry}/cwd")
            except OSError:
                continue
            if any(cwd == r or cwd.startswith(r + "/") for r in roots):
                found.append(int(entry))
        return found


def git_checkout(path: Path) -> None:
    run = ["git", "-C", str(path), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*run[:3], "init", "-q"], check=True)
    subprocess.run([*run, "add", "-A"], check=True)
    subprocess.run([*run, "commit", "-qm", "suite"], check=True)


def drop_git(path: Path) -> None:
    shutil.rmtree(path / ".git", ignore_errors=True)
