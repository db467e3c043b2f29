"""runner.client.http: GETs are retried; a POST only when it cannot have reached the server."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from runner.client.http import Client, Rejected, Unreachable
from tests.servers import free_port


class Stub:
    """A server that answers each request as ``behaviour`` says and counts the requests."""

    def __init__(self, behaviour: str):
        self.calls: list[tuple[str, float]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                stub.calls.append((self.command, time.monotonic()))
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                if behaviour == "drop":  # read the request, then hang up without an answer
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                status = {"503": 503, "404": 404}.get(behaviour, 200)
                body = json.dumps({"detail": "no such run"} if status == 404 else {"ok": 1})
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body.encode())

            do_GET = do_POST = _answer  # noqa: N815

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def methods(self) -> list[str]:
        return [method for method, _ in self.calls]


@pytest.fixture
def stub(request):
    server = Stub(request.param)
    yield server
    server.server.shutdown()
    server.server.server_close()


def client(url: str) -> Client:
    return Client(url, "t", timeout=5.0, retries=2, backoff=0.05)


@pytest.mark.parametrize("stub", ["drop"], indirect=True)
def test_a_post_that_reached_the_server_is_not_sent_again(stub):
    with pytest.raises(Unreachable, match="POST .* failed"):
        client(stub.url).post_json("/api/runs", {"suite": "s"})
    assert stub.methods() == ["POST"]


@pytest.mark.parametrize("stub", ["drop"], indirect=True)
def test_a_get_is_retried_after_a_lost_answer(stub):
    with pytest.raises(Unreachable, match="no answer after 3 tries"):
        client(stub.url).get_json("/api/runs/1")
    assert stub.methods() == ["GET"] * 3


@pytest.mark.parametrize("stub", ["503"], indirect=True)
def test_503_retries_gets_only(stub):
    with pytest.raises(Unreachable, match="HTTP 503"):
        client(stub.url).post_json("/api/runs/1/cancel")
    assert stub.methods() == ["POST"]
    with pytest.raises(Unreachable, match="HTTP 503"):
        client(stub.url).get_json("/api/runs/1")
    assert stub.methods() == ["POST"] + ["GET"] * 3
    waits = [b - a for (_, a), (_, b) in zip(stub.calls[1:], stub.calls[2:], strict=False)]
    # Every retry waits its backoff (0.05 s), then twice as long. A loaded machine only
    # stretches a wait, so each is checked against its least, not against the other (CI saw
    # the first stretched to 0.27 s and the second at 0.11 s).
    assert waits[0] >= 0.045 and waits[1] >= 0.095, waits


@pytest.mark.parametrize("stub", ["404"], indirect=True)
def test_4xx_is_rejected_at_once_with_the_detail(stub):
    with pytest.raises(Rejected) as caught:
        client(stub.url).get_json("/api/runs/9")
    assert (caught.value.status, caught.value.detail) == (404, "no such run")
    assert stub.methods() == ["GET"]


def test_a_post_the_server_never_received_is_retried():
    """Connection refused: the request cannot have been sent, so a POST is tried again."""
    started = time.monotonic()
    with pytest.raises(Unreachable, match="no answer after 3 tries"):
        Client(f"http://127.0.0.1:{free_port()}", "t", retries=2, backoff=0.2).post_json("/x")
    assert time.monotonic() - started >= 0.2 + 0.4 - 0.05  # the two retries' waits
