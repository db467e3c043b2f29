"""Fork workers do not share the connections user code opened at import time (fork.safety).

Real runs of tiny suites on the fork engine, against a real TCP server in this process.
"""

from __future__ import annotations

import socketserver
import threading

import pytest

WAIT = 30.0  # seconds: a bound on every wait, never reached when things work

# The suite's conftest connects at import time, i.e. in the controller, before the fork.
SERVER_SUITE = {
    "conftest.py": """
        import os, socket, pytest

        ADDRESS = ("127.0.0.1", int(os.environ["FORK_SAFETY_PORT"]))

        def ask(sock, line):
            sock.sendall(line + b"\\n")
            reply = b""
            while not reply.endswith(b"\\n"):
                chunk = sock.recv(16)
                assert chunk, "connection closed"
                reply += chunk
            return reply

        SHARED = socket.create_connection(ADDRESS, timeout=5)
        assert ask(SHARED, b"controller-hello") == b"ok\\n"
        SHARED_INODE = os.fstat(SHARED.fileno()).st_ino
        LISTENER = socket.create_server(("127.0.0.1", 0))
        PAIR = socket.socketpair()

        @pytest.fixture(scope="session")
        def own_connection(worker_id):
            with socket.create_connection(ADDRESS, timeout=5) as sock:
                assert ask(sock, f"session {worker_id}".encode()) == b"ok\\n"
                yield sock

        def pytest_sessionfinish(session):
            if not hasattr(session.config, "workerinput"):  # the controller's is intact
                assert ask(SHARED, b"controller-bye") == b"ok\\n"
    """,
    "test_conn.py": """
        import errno, os, socket, stat
        import pytest
        from conftest import ADDRESS, LISTENER, PAIR, SHARED, SHARED_INODE, ask

        @pytest.mark.parametrize("i", range(6))
        def test_in_a_worker(i, own_connection, worker_id):
            # The inherited connection fails clearly; its number is taken by another socket.
            st = os.fstat(SHARED.fileno())
            assert stat.S_ISSOCK(st.st_mode) and st.st_ino != SHARED_INODE
            with pytest.raises(OSError) as sent:
                SHARED.sendall(b"worker bytes\\n")
            assert sent.value.errno in (errno.EPIPE, errno.ENOTCONN)
            with pytest.raises(OSError) as received:
                SHARED.recv(16)
            assert received.value.errno == errno.ENOTCONN
            # Connections the worker opens itself work: at session setup, and now.
            assert ask(own_connection, f"{worker_id} {i}".encode()) == b"ok\\n"
            with socket.create_connection(ADDRESS, timeout=5) as sock:
                assert ask(sock, f"fresh {worker_id} {i}".encode()) == b"ok\\n"

        def test_listeners_and_socketpairs_stay():
            assert LISTENER.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
            PAIR[0].sendall(b"x")
            assert PAIR[1].recv(1) == b"x"
    """,
}


class LineServer:
    """Answers ``ok`` to every line; keeps the bytes each connection sent."""

    def __init__(self) -> None:
        self.received: list[bytearray] = []
        lock = threading.Lock()
        received = self.received

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                data = bytearray()
                with lock:
                    received.append(data)
                self.request.settimeout(WAIT)
                while chunk := self.request.recv(4096):
                    data += chunk
                    self.request.sendall(b"ok\n" * chunk.count(b"\n"))

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> list[bytes]:
        """Stop; every connection's bytes (handlers end at their peer's EOF, within WAIT)."""
        if self.thread.is_alive():
            self.server.shutdown()
            self.server.server_close()  # joins the handler threads
            self.thread.join(WAIT)
        return [bytes(data) for data in self.received]


@pytest.fixture
def line_server():
    server = LineServer()
    yield server
    server.stop()


def test_workers_do_not_share_import_time_connections(suite, line_server):
    run = suite(SERVER_SUITE, "--ptd-workers", "2", env={"FORK_SAFETY_PORT": str(line_server.port)})
    assert run.returncode == 0, run.output
    assert len(run.tests) == 7 and {t["outcome"] for t in run.tests} == {"passed"}, run.output
    assert {t["worker"] for t in run.tests} == {"gw0", "gw1"}
    received = line_server.stop()
    # The controller's connection carried its own conversation and nothing from a worker.
    controller = [data for data in received if data.startswith(b"controller-hello")]
    assert controller == [b"controller-hello\ncontroller-bye\n"]
    assert not any(b"worker bytes" in data for data in received)
    lines = {line for data in received for line in data.decode().splitlines()}
    assert {"session gw0", "session gw1"} <= lines
    assert sum(line.startswith("fresh ") for line in lines) == 6


DJANGO_SUITE = {
    "conftest.py": """
        import os
        import django
        from django.conf import settings

        here = os.path.dirname(os.path.abspath(__file__))
        settings.configure(
            DATABASES={
                "default": {"ENGINE": "django.db.backends.sqlite3",
                            "NAME": os.path.join(here, "db.sqlite3")},
                "memory": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
            }
        )
        django.setup()
        from django.db import connections

        # At import time, in the controller: both connections exist before the fork.
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 1")
        with connections["memory"].cursor() as cursor:
            cursor.execute("CREATE TABLE t (x INTEGER)")
            cursor.execute("INSERT INTO t VALUES (42)")
        CONTROLLER_CONNECTION = connections["default"].connection
    """,
    "test_db.py": """
        import pytest
        from django.db import connections
        from conftest import CONTROLLER_CONNECTION

        @pytest.mark.parametrize("i", range(2))
        def test_worker_queries_on_its_own_connection(i):
            with connections["default"].cursor() as cursor:
                cursor.execute("SELECT 1")
                assert cursor.fetchone() == (1,)
            assert connections["default"].connection is not CONTROLLER_CONNECTION

        @pytest.mark.parametrize("i", range(2))
        def test_in_memory_database_is_kept(i):
            with connections["memory"].cursor() as cursor:
                cursor.execute("SELECT x FROM t")
                assert cursor.fetchone() == (42,)
    """,
}


def test_django_connections_are_reopened_in_each_worker(suite):
    run = suite(DJANGO_SUITE, "--ptd-workers", "2")
    assert run.returncode == 0, run.output
    assert len(run.tests) == 4 and {t["outcome"] for t in run.tests} == {"passed"}, run.output
