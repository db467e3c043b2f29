"""A small in-memory JSON "inventory" service, started once per worker on a port from the OS.

Each worker (gw0, gw1, ...) gets its own server and its own data, so tests never share
state across workers: the per-worker isolation pattern pytest-xdist users rely on.
"""

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests


class Store:
    def __init__(self):
        self.lock = threading.Lock()
        self.items = {}
        self.next_id = 1

    def add(self, data):
        with self.lock:
            item = {"id": self.next_id, "name": data["name"], "price": data.get("price", 0)}
            self.items[self.next_id] = item
            self.next_id += 1
            return item


class Handler(BaseHTTPRequestHandler):
    store: Store
    worker: str

    def _send(self, status, body):
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _body(self):
        length = int(self.headers.get("Content-Length") or 0)
        try:
            return json.loads(self.rfile.read(length) or b"{}")
        except json.JSONDecodeError:
            return None

    def do_GET(self):
        if self.path == "/health":
            return self._send(200, {"status": "ok", "worker": self.worker})
        if self.path == "/items":
            return self._send(200, {"items": list(self.store.items.values())})
        if match := re.fullmatch(r"/items/(\d+)", self.path):
            item = self.store.items.get(int(match[1]))
            return self._send(200, item) if item else self._send(404, {"error": "not found"})
        if match := re.fullmatch(r"/report\?seconds=([\d.]+)", self.path):
            time.sleep(float(match[1]))  # a slow report, as real APIs have
            return self._send(200, {"rows": len(self.store.items), "took": float(match[1])})
        return self._send(404, {"error": "no such endpoint"})

    def do_POST(self):
        if self.path != "/items":
            return self._send(404, {"error": "no such endpoint"})
        data = self._body()
        if not isinstance(data, dict) or not data.get("name"):
            return self._send(400, {"error": "name is required"})
        if not isinstance(data.get("price", 0), int | float) or data.get("price", 0) < 0:
            return self._send(400, {"error": "price must be a non-negative number"})
        return self._send(201, self.store.add(data))

    def do_DELETE(self):
        if match := re.fullmatch(r"/items/(\d+)", self.path):
            with self.store.lock:
                removed = self.store.items.pop(int(match[1]), None)
            return self._send(204 if removed else 404, {})
        return self._send(404, {"error": "no such endpoint"})

    def log_message(self, *args):
        pass


class Api:
    def __init__(self, base):
        self.base = base
        self.session = requests.Session()

    def get(self, path):
        return self.session.get(self.base + path, timeout=30)

    def post(self, path, body):
        return self.session.post(self.base + path, json=body, timeout=30)

    def delete(self, path):
        return self.session.delete(self.base + path, timeout=30)


@pytest.fixture(scope="session")
def api(worker_id):  # worker_id: pytest-xdist's fixture (gw0, gw1, ... or "master")
    handler = type("WorkerHandler", (Handler,), {"store": Store(), "worker": worker_id})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Api(f"http://127.0.0.1:{server.server_port}")
    server.shutdown()
    server.server_close()
