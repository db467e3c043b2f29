"""Start a real `manage.py serve` in a subprocess for end-to-end tests."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def isolated_env(data_dir: Path) -> dict:
    """The environment for a PTD subprocess with data of its own.

    SQLite lives in the data dir already; with DATABASE_URL set (CI's PostgreSQL run) a fresh
    database is created for it, and with REDIS_URL a channel prefix of its own, so concurrent
    servers never see each other's runs.
    """
    env = {**os.environ, "PTD_DATA_DIR": str(data_dir)}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.pop("PTD_BACKGROUND_HISTORY", None)  # a real server: the production setting
    url = os.environ.get("DATABASE_URL")
    if url:
        import psycopg

        name = f"ptd_e2e_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        env["DATABASE_URL"] = url.rsplit("/", 1)[0] + "/" + name
        _created_databases.append((url, name))
    if os.environ.get("REDIS_URL"):
        env["PTD_CHANNEL_PREFIX"] = f"ptd-{uuid.uuid4().hex[:8]}"
    return env


_created_databases: list[tuple[str, str]] = []


def drop_isolated_databases() -> None:
    if not _created_databases:
        return
    import psycopg

    while _created_databases:
        url, name = _created_databases.pop()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServeProcess:
    def __init__(self, data_dir: Path, env: dict | None = None, port: int | None = None):
        self.data_dir = data_dir
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = env or isolated_env(data_dir)
        self.output: list[str] = []
        self.proc: subprocess.Popen | None = None
        self._changed = threading.Condition()
        self._closed = False

    def start(self, timeout: float = 60) -> ServeProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--port", str(self.port)],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        # Drain the output all along: a full pipe would block the server.
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()
        self.wait_for(r"serving on", timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:  # the line is printed just before listening
            # An HTTP answer, not only an accepted connection: daphne listens before its
            # reactor runs and installs the SIGTERM handler, and a stop() in between would
            # kill the server outright (exit -15) instead of stopping it.
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
                    sock.sendall(b"GET /login/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
                    if sock.recv(12).startswith(b"HTTP/"):
                        return self
            except OSError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError("serve did not listen:\n" + "".join(self.output))

    def _drain(self) -> None:
        for line in self.proc.stdout:
            with self._changed:
                self.output.append(line)
                self._changed.notify_all()
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def wait_for(self, pattern: str, timeout: float) -> re.Match:
        """Wait until a line of the server's output matches `pattern` (bounded)."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self._changed:
            while True:
                for line in self.output[seen:]:
                    if match := re.search(pattern, line):
                        return match
                seen = len(self.output)
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    break
                self._changed.wait(left)
        raise RuntimeError(f"no {pattern!r} in serve's output:\n" + "".join(self.output))

    def manage(self, *args: str) -> str:
        """Run a `manage.py` command on this server's data; its standard output."""
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout

    def create_token(self, username: str = "admin", name: str = "") -> str:
        """A new API token for `username` (`manage.py create_token` on this server's data)."""
        out = self.manage("create_token", username, *(["--name", name] if name else []))
        return out.strip().splitlines()[-1]

    def stop(self, timeout: float = 20) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(timeout=5)
        return self.proc.returncode
