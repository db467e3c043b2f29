"""A suite for load-mode tests: a threaded HTTP service started once per process by a session
fixture (as seed 002/003's mock service, with a delay), functional tests calling it with
requests, and each iteration's own timing appended to the file $RAW_TIMINGS, so figures can
be checked against what the tests themselves measured."""

from __future__ import annotations

from pathlib import Path

CONFTEST = """
import threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

DELAY = float(__import__("os").environ.get("SERVICE_DELAY", "0.05"))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if self.path.startswith("/items/"):
            time.sleep(DELAY)
            self.reply(200, b'{"code": 1, "message": "Hello, World!"}')
        elif self.path == "/broken":
            self.reply(500, b'{"code": 0}')
        else:
            self.reply(404, b"{}")

    def reply(self, status, body):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="session")
def service():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
"""

TESTS = """
import itertools, os, time

import requests

_ids = itertools.count()


def test_item(service):
    item = next(_ids) % 50
    start = time.perf_counter()
    resp = requests.get(f"{service}/items/{item}", timeout=10)
    elapsed_ms = (time.perf_counter() - start) * 1000
    with open(os.environ["RAW_TIMINGS"], "a") as raw:
        raw.write(f"{elapsed_ms:.3f}\\n")
    assert resp.status_code == 200
    assert resp.json()["code"] == 1


def test_broken(service):
    resp = requests.get(f"{service}/broken", timeout=10)
    resp.raise_for_status()
"""


def write_load_suite(directory: Path) -> Path:
    """The suite on disk (no Django here: benchmarks import it before any setup)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "pytest.ini").write_text("[pytest]\n")
    (directory / "conftest.py").write_text(CONFTEST)
    (directory / "test_service.py").write_text(TESTS)
    return directory
