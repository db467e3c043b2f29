"""Ingestion end to end: a real `pytest -n 2` elsewhere sends its run to a live dashboard."""

from __future__ import annotations

import functools
import json
import os
import re
import stat
import subprocess
import sys

import pytest
import requests

from tests.factories import write_suite
from tests.servers import ROOT, ServeProcess, free_port
from tests.test_serve import login

SUITE = {
    "tests/test_a.py": (
        "import pytest\n\n"
        "@pytest.mark.parametrize('i', range(6))\n"
        "def test_many(i):\n    pass\n\n"
        "def test_fails():\n    assert 1 == 2, 'boom'\n"
    ),
    "tests/test_b.py": "def test_skip():\n    import pytest\n    pytest.skip('later')\n",
}
PASSING = {"tests/test_ok.py": "def test_one():\n    pass\n\ndef test_two():\n    pass\n"}


def plugin_args(python: str = sys.executable) -> list[str]:
    """The plugin comes from the pytest11 entry point where the suite's interpreter sees one
    (PTD pip-installed, or an egg-info beside the checkout on PYTHONPATH); else -p. Asking
    both ways would register it twice, which pytest refuses."""
    return [] if _sees_entry_point(python) else ["-p", "runner.client.plugin"]


@functools.cache
def _sees_entry_point(python: str) -> bool:
    probe = (
        "import importlib.metadata as m, sys; sys.exit(0 if any("
        "e.value == 'runner.client.plugin' for e in m.entry_points(group='pytest11')) else 1)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([python, "-c", probe], env=env, timeout=60).returncode == 0


@pytest.fixture
def suite_python() -> str:
    """The CI job's interpreter: this one here; tests/runner/test_compat_*.py run the test
    again with the pytest / xdist / requests versions PTD supports."""
    return sys.executable


def pytest_run(suite, *args, timeout=120, extra_env=None, python=sys.executable):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PTD_", "PYTEST_"))}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra_env or {})
    return subprocess.run(
        [python, "-m", "pytest", "-p", "no:cacheprovider", "-q", *plugin_args(python), *args],
        cwd=suite,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("ingest")
    serve = ServeProcess(base / "data").start()
    try:
        serve.token = serve.create_token()
        serve.suite = write_suite(base / "suite", SUITE)
        serve.passing = write_suite(base / "passing", PASSING)
        yield serve
    finally:
        serve.stop()


def api(server, path):
    response = requests.get(
        server.url + path, headers={"Authorization": f"Bearer {server.token}"}, timeout=10
    )
    assert response.status_code == 200, response.text
    return response.json()


def ptd_args(server, suite="demo"):
    return ["--ptd-url", server.url, "--ptd-token", server.token, "--ptd-suite", suite]


def test_xdist_run_is_streamed_and_closed(server, suite_python):
    out = pytest_run(
        server.suite,
        "-n",
        "2",
        *ptd_args(server),
        "--ptd-branch",
        "ci-branch",
        python=suite_python,
    )
    assert out.returncode == 1, out.stdout + out.stderr  # test_fails fails, as without PTD
    assert "1 failed, 6 passed, 1 skipped" in out.stdout
    assert "ptd: run failed: " in out.stdout and "warning" not in out.stdout
    run_url = out.stdout.split("ptd: run failed: ")[1].split()[0]
    run_id = int(run_url.rstrip("/").rsplit("/", 1)[1])
    run = api(server, f"/api/runs/{run_id}")
    assert run["trigger"] == "external" and run["status"] == "failed"
    assert run["branch"] == "ci-branch" and run["workers"] == 2 and run["collected"] == 8
    assert run["tests"] == {
        "total": 8,
        "passed": 6,
        "failed": 1,
        "skipped": 1,
        "errors": 0,
        "flaky": 0,
    }
    assert {w["id"] for w in run["per_worker"]} == {"gw0", "gw1"}
    assert 0 < run["wall_seconds"] < 60 and run["speedup"] is not None
    failed = api(server, f"/api/runs/{run_id}/results?outcome=failed")["items"]
    assert failed[0]["nodeid"] == "tests/test_a.py::test_fails" and "boom" in failed[0]["longrepr"]
    junit = requests.get(
        f"{server.url}/api/runs/{run_id}/junit.xml",
        timeout=10,
        headers={"Authorization": f"Bearer {server.token}"},
    )
    assert b'tests="8"' in junit.content


def test_run_without_xdist_is_one_worker(server):
    out = pytest_run(server.passing, *ptd_args(server))
    assert out.returncode == 0, out.stdout + out.stderr
    runs = api(server, "/api/runs?trigger=external&status=passed")["items"]
    assert runs and [w["id"] for w in runs[0]["per_worker"]] == ["gw0"]
    assert runs[0]["tests"]["passed"] == 2 and runs[0]["workers"] == 1


def test_unknown_suite_warns_and_the_run_goes_on(server):
    out = pytest_run(server.passing, *ptd_args(server, suite="nope"))
    assert out.returncode == 0 and "2 passed" in out.stdout
    assert out.stdout.count("ptd: warning:") == 1 and "no suite 'nope'" in out.stdout


def test_dashboard_down_spools_and_the_spool_can_be_uploaded(server, tmp_path):
    spool = tmp_path / "spool.jsonl"
    down = f"http://127.0.0.1:{free_port()}"
    out = pytest_run(
        server.passing,
        "-n",
        "2",
        "--ptd-url",
        down,
        "--ptd-token",
        server.token,
        "--ptd-suite",
        "demo",
        "--ptd-spool",
        str(spool),
    )
    assert out.returncode == 0 and "2 passed" in out.stdout, out.stdout + out.stderr
    assert "dashboard unreachable" in out.stdout and "ptd upload" in out.stdout
    assert "Traceback" not in out.stdout + out.stderr
    lines = [json.loads(line) for line in spool.read_text().splitlines()]
    assert lines[0]["type"] == "ptd_spool" and lines[-1]["type"] == "ptd_finish"
    upload = subprocess.run(
        [
            sys.executable,
            "-m",
            "runner.client.cli",
            "upload",
            str(spool),
            "--server",
            server.url,
            "--token",
            server.token,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert upload.returncode == 0, upload.stderr
    run = api(server, f"/api/runs/{json.loads(upload.stdout)['id']}")
    assert run["status"] == "passed" and run["tests"]["total"] == 2


def test_plugin_is_inert_without_ptd_url(server):
    out = pytest_run(server.passing)
    # Every line the plugin prints starts "ptd: " (notices, warnings, the run's link); paths in
    # pytest's own output may well contain "ptd".
    printed = [line for line in (out.stdout + out.stderr).splitlines() if line.startswith("ptd:")]
    assert out.returncode == 0 and not printed, out.stdout + out.stderr
    code = "import sys, runner.client.plugin; assert not {'requests', 'django'} & set(sys.modules)"
    check = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True)
    assert check.returncode == 0, check.stderr


def run_id_of(out) -> int:
    """The run's id from the plugin's last line (`ptd: run STATUS: URL`)."""
    url = re.search(r"ptd: run \w+: (\S+)", out.stdout)[1]
    return int(url.rstrip("/").rsplit("/", 1)[1])


@pytest.mark.parametrize("spelling", ["separate", "joined"])
def test_the_token_leaves_the_ci_machine_only_in_the_header(server, spelling):
    """Issue #12 item 2: `--ptd-token T` and `--ptd-token=T` are not uploaded."""
    token_args = (
        ["--ptd-token", server.token] if spelling == "separate" else [f"--ptd-token={server.token}"]
    )
    out = pytest_run(
        server.passing, "--ptd-url", server.url, *token_args, "--ptd-suite", "demo", "-k", "one"
    )
    assert out.returncode == 0 and "ptd: run passed" in out.stdout, out.stdout + out.stderr
    run_id = run_id_of(out)
    stored = json.loads(server.manage("dumpdata", "runs.run", f"--pks={run_id}"))
    (row,) = stored
    assert row["fields"]["config_snapshot"]["extra_args"][-2:] == ["-k", "one"]
    assert server.token not in json.dumps(row)
    assert "--ptd-token" not in json.dumps(row)
    assert server.token not in json.dumps(api(server, f"/api/runs/{run_id}"))
    session = requests.Session()
    password = (server.data_dir / "initial_admin_password").read_text().strip()
    login(session, server.url, "admin", password)
    page = session.get(f"{server.url}/runs/{run_id}/", timeout=10)
    assert page.status_code == 200 and server.token not in page.text


def test_the_default_spool_is_private_and_holds_no_token(server, tmp_path):
    """Issue #12 item 3: mode 0600 in a new 0700 directory, no predictable name, no token."""
    down = f"http://127.0.0.1:{free_port()}"
    suite = server.passing
    env_tmp = tmp_path / "tmp"
    env_tmp.mkdir()
    out = pytest_run(
        suite,
        "--ptd-url",
        down,
        f"--ptd-token={server.token}",
        "--ptd-suite",
        "demo",
        extra_env={"TMPDIR": str(env_tmp)},
    )
    assert out.returncode == 0 and "ptd upload" in out.stdout, out.stdout + out.stderr
    (directory,) = env_tmp.iterdir()
    (spool,) = directory.iterdir()
    assert directory.name.startswith("ptd-spool-") and directory.is_dir()
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(spool.stat().st_mode) == 0o600
    text = spool.read_text()
    assert server.token not in text and "--ptd-token" not in text
    assert str(spool) in out.stdout  # the warning says where it is, for `ptd upload`


def test_the_plugin_registers_no_logger_from_its_thread(tmp_path):
    """pytest walks the logging manager's loggers on the main thread each time it captures
    logs: the ingestion thread must not register one meanwhile (it ended a CI run with
    "dictionary changed size during iteration"). A fresh interpreter, the HTTP stack not yet
    imported, the dashboard unreachable: the thread's work adds no logger."""
    code = f"""
import logging, time
from pathlib import Path
from runner.client.plugin import Sender
sender = Sender("http://127.0.0.1:{free_port()}", "t", {{"suite": "demo"}},
                Path({str(tmp_path / "spool.jsonl")!r}), started=time.time())
before = set(logging.root.manager.loggerDict)
sender.emit({{"type": "session_start", "time": time.time()}})
sender.close(timeout=30)
print(sorted(set(logging.root.manager.loggerDict) - before))
"""
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
