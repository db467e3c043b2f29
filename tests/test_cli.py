"""The `ptd` command against a live `manage.py serve` (one server for the module)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from tests.factories import write_suite
from tests.servers import ROOT, ServeProcess, free_port


def ptd_command() -> list[str]:
    """The installed `ptd` script once it is this tree's (an older install's runs elsewhere)."""
    script = shutil.which("ptd")
    if script:
        with open(script, encoding="utf-8", errors="replace") as fh:
            if "runner.client.cli" in fh.read(4000):
                return [script]
    return [sys.executable, "-m", "runner.client.cli"]


PTD = ptd_command()
PASSING = {"tests/test_ok.py": "def test_one():\n    pass\n\ndef test_two():\n    pass\n"}
FAILING = {"tests/test_bad.py": "def test_ok():\n    pass\n\ndef test_bad():\n    assert 1 == 2\n"}
SLOW = {"tests/test_slow.py": "import time\n\ndef test_slow():\n    time.sleep(60)\n"}


def ptd(*args, env=None, timeout=60):
    return subprocess.run(
        [*PTD, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("cli")
    serve = ServeProcess(base / "data").start()
    try:
        token = serve.create_token(name="cli-tests")
        headers = {"Authorization": f"Bearer {token}"}
        for name, files in (("ok", PASSING), ("bad", FAILING), ("slow", SLOW)):
            path = write_suite(base / name, files)
            response = requests.post(
                f"{serve.url}/api/suites",
                json={"name": name, "path": str(path), "workers": 1},
                headers=headers,
                timeout=10,
            )
            assert response.status_code == 201, response.text
        serve.token = token
        yield serve
    finally:
        serve.stop()


def common(server):
    return ["--server", server.url, "--token", server.token]


def test_wait_passed_exits_0_with_progress_and_junit(server, tmp_path):
    junit = tmp_path / "out.xml"
    out = ptd(
        "run",
        *common(server),
        "--suite",
        "ok",
        "--wait",
        "--poll",
        "0.2",
        "--junit",
        str(junit),
        "--branch",
        "main",
        "--commit",
        "abc123",
    )
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["status"] == "passed" and summary["tests"]["total"] == 2
    assert summary["branch"] == "main" and summary["trigger"] == "api"
    assert f"run {summary['id']} passed: 2 tests" in out.stderr
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite.get("tests") == "2" and suite.get("failures") == "0"


def test_wait_failed_exits_1(server):
    out = ptd("run", *common(server), "--suite", "bad", "--wait", "--poll", "0.2")
    assert out.returncode == 1, out.stderr
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["status"] == "failed" and summary["tests"]["failed"] == 1
    # ptd status gives the same verdict.
    status = ptd("status", str(summary["id"]), *common(server))
    assert status.returncode == 1 and json.loads(status.stdout)["status"] == "failed"


def test_env_vars_and_no_wait(server):
    env = {
        "PATH": "/usr/bin:/bin",
        "PTD_SERVER": server.url,
        "PTD_TOKEN": server.token,
        "GITHUB_SHA": "f" * 40,
        "GITHUB_REF_NAME": "feature-x",
    }
    out = ptd("run", "--suite", "ok", env={**env, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    created = json.loads(out.stdout)
    assert created["status"] == "queued" and created["url"] == f"/runs/{created['id']}/"
    run = requests.get(
        f"{server.url}/api/runs/{created['id']}",
        timeout=10,
        headers={"Authorization": f"Bearer {server.token}"},
    ).json()
    assert run["commit"] == "f" * 40 and run["branch"] == "feature-x"


def test_cancel_then_status_is_3_and_cancel_again_is_2(server):
    out = ptd("run", *common(server), "--suite", "slow")
    run_id = str(json.loads(out.stdout)["id"])
    cancel = ptd("cancel", run_id, *common(server))
    assert cancel.returncode == 0, cancel.stderr
    assert json.loads(cancel.stdout)["status"] == "cancelled"
    assert ptd("status", run_id, *common(server)).returncode == 3
    again = ptd("cancel", run_id, *common(server))
    assert again.returncode == 2 and "409" in again.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--suite", "nope"], "no suite 'nope'"),
        (["--suite", "ok", "--workers", "0.5"], "workers"),
        (["--suite", "ok", "--token", "ptd_wrong"], "token was refused"),
        (["--suite", "ok", "--config", "nope"], "no configuration 'nope'"),
    ],
)
def test_rejected_requests_exit_2(server, args, message):
    argv = ["run", "--server", server.url, "--token", server.token, *args]
    out = ptd(*argv)
    assert out.returncode == 2 and message in out.stderr, out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["run", "--suite", "ok"],  # no server
        ["run", "--server", "ftp://x", "--token", "t", "--suite", "ok"],
        ["run", "--server", "http://x", "--suite", "ok"],  # no token
        ["run", "--server", "http://x", "--token", "t", "--suite", "ok", "--junit", "f"],
        ["status", "0", "--server", "http://x", "--token", "t"],
        ["status", "abc"],
        ["frobnicate"],
        ["run", "--server", "http://x", "--token", "t", "--suite", "ok", "--spawn-rate", "nan"],
        ["run", "--server", "http://x", "--token", "t", "--suite", "ok", "--think-time", "inf"],
    ],
)
def test_bad_usage_exits_2(args):
    out = ptd(*args, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr


@pytest.mark.parametrize(
    "content",
    [
        b"[]\n",  # JSON, but no spool
        b"\xff\xfe not utf-8\n",
        b'{"type": "ptd_spool", "suite": "ok"}\n{"type": "ptd_run"}\n',  # a line without its id
        b'{"type": "ptd_spool", "suite": "ok"}\n{"type": "ptd_finish", "exitstatus": "x"}\n',
    ],
)
def test_upload_of_a_file_that_is_no_spool_exits_2(tmp_path, content):
    spool = tmp_path / "run.jsonl"
    spool.write_bytes(content)
    out = ptd("upload", str(spool), "--server", "http://127.0.0.1:9", "--token", "t")
    assert out.returncode == 2 and "not a PTD spool file" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr


def test_unreachable_server_exits_3_within_its_timeout():
    started = time.monotonic()
    out = ptd(
        "status",
        "1",
        "--server",
        f"http://127.0.0.1:{free_port()}",
        "--token",
        "t",
        "--retries",
        "2",
        "--request-timeout",
        "1",
        timeout=30,
    )
    assert out.returncode == 3 and "no answer after 3 tries" in out.stderr
    assert time.monotonic() - started < 15


def test_gets_are_retried_on_503_with_backoff():
    """A stub server answers 503 twice, then the run: ptd status succeeds."""
    calls = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            calls.append(time.monotonic())
            body = json.dumps({"id": 7, "status": "passed", "tests": {}}).encode()
            self.send_response(503 if len(calls) <= 2 else 200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    stub = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=stub.serve_forever, daemon=True)
    thread.start()
    try:
        out = ptd("status", "7", "--server", f"http://127.0.0.1:{stub.server_port}", "--token", "t")
    finally:
        stub.shutdown()
    assert out.returncode == 0, out.stderr
    assert len(calls) == 3 and calls[2] - calls[1] > calls[1] - calls[0] > 0.3


def test_cli_never_imports_django():
    code = (
        "import sys, runner.client.cli\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('django', 'ninja', 'channels')]\n"
        "assert not bad, bad\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_what_the_server_says_is_shown_as_text_not_as_terminal_commands(capsys):
    """A run's message and an error's detail come from the server, which any member can set."""
    from runner.client.cli import log

    log("boom \x1b[2J\x1b]0;owned\x07\x1b[31mFAKE\x1b\r\nptd: run 1 passed\x9b")
    err = capsys.readouterr().err
    assert not set(err) & {"\x1b", "\r", "\x07", "\x9b"}
    assert "FAKE" in err and "\nptd: run 1 passed" in err  # the words and lines stay
