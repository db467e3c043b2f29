"""A shard's controller and the dashboard's queue, as plain objects (fork.remote): one request
on its way at a time, asking for every worker that needs units, ahead of their last item
(tests/test_agents.py runs the whole over real machines)."""

from __future__ import annotations

import json
import select
import shutil
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from _ptd_inrun.fork.remote import RemoteScheduler
from _ptd_inrun.fork.shardhttp import QueueRefused, ShardQueue

IDS = [f"t.py::test_{i}" for i in range(40)]


class FakeQueue:
    """The dashboard: each unit one test of 0.1 s, handed out in order; requests recorded."""

    def __init__(self, state: str = "more", give: int = 3) -> None:
        self.bodies: list[dict] = []
        self.next = 0
        self.state = state
        self.give = give
        self.answer_now = False  # start() fails: the request is posted, waiting

    def _lease(self, body: dict) -> dict:
        self.bodies.append(body)
        leases = {}
        for ask in body["asks"]:
            count = self.give if ask["held"] <= 1 else 1
            units = [{"id": i, "nodeids": [IDS[i]], "seconds": 0.1}
                     for i in range(self.next, min(len(IDS), self.next + count))]  # fmt: skip
            self.next += len(units)
            leases[ask["worker"]] = units
        return {"leases": leases, "state": self.state, "budget": 0.5}

    def start(self, path: str, body: dict):
        if self.answer_now:
            return None
        return FakePending(path, body)

    def finish(self, pending: FakePending) -> dict:
        return self._lease(pending.body)

    def post(self, path: str, body: dict) -> dict:
        return self._lease(body)


class FakePending:
    def __init__(self, path: str, body: dict) -> None:
        self.path, self.body = path, body
        self.sent = time.monotonic()


def scheduler(queue: FakeQueue, workers: int = 3) -> RemoteScheduler:
    core = RemoteScheduler(IDS, "load", None, queue)  # type: ignore[arg-type]
    for i in range(workers):
        core.add_worker(f"gw{i}")
    return core


def test_one_request_asks_for_every_worker_that_needs_units():
    queue = FakeQueue()
    core = scheduler(queue)
    assert [core.next_for_worker(f"gw{i}") for i in range(3)] == [[], [], []]
    assert core.pump() is False and core.pending is not None
    assert core.pump() is False  # one request on its way at a time
    assert [a["worker"] for a in core.pending.body["asks"]] == ["gw0", "gw1", "gw2"]
    assert core.settle()
    assert len(queue.bodies) == 1
    got = [core.next_for_worker(f"gw{i}") for i in range(3)]
    assert got == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    assert core.next_for_worker("gw0") == []  # sent once


def test_a_worker_is_asked_for_ahead_of_its_last_item_and_not_again_for_nothing():
    queue = FakeQueue(give=2)
    core = scheduler(queue, workers=1)
    core.pump()
    core.settle()
    assert core.next_for_worker("gw0") == [0, 1]
    assert core.pump() is False and core.pending is not None  # it holds two: asked already
    assert core.pending.body["asks"] == [
        {"worker": "gw0", "held": 2, "held_seconds": 0.1, "behind": pytest.approx(0.1)}
    ]
    queue.give = 0
    queue.next = len(IDS)  # nothing fits: an empty answer
    core.settle()
    assert not core.server_empty  # "more" on the dashboard, only not for this worker now
    core.pump()
    assert core.pending is None  # holding the same: not asked again
    core.mark_complete("gw0", 0)
    core.pump()
    assert core.pending is not None  # down to its last item


def test_a_worker_down_to_two_items_is_asked_for_however_long_its_second():
    core = scheduler(FakeQueue(), workers=1)
    core.workers["gw0"].in_flight = [0, 1]
    core.estimates[1] = core.budget_seconds  # more than half the budget behind its item
    core.pump()
    assert core.pending is not None and core.pending.body["asks"][0]["held"] == 2
    core.settle()
    core.next_for_worker("gw0")  # what came is sent
    core.workers["gw0"].in_flight = [0, 1, 2]
    core.estimates[2] = core.budget_seconds
    core.pump()
    assert core.pending is None  # three: enough behind the running one


def test_a_worker_holding_a_long_item_is_not_asked_for():
    core = scheduler(FakeQueue(), workers=1)
    core.workers["gw0"].in_flight = [0, 1]
    core.estimates[0] = 3.0
    core.pump()
    assert core.pending is None


def test_an_answer_for_a_worker_gone_meanwhile_runs_on_another():
    queue = FakeQueue()
    core = scheduler(queue, workers=2)
    core.pump()
    core.remove_worker("gw1")  # crashed while the request was on its way
    core.settle()
    assert core.next_for_worker("gw0") == [0, 1, 2]
    core.add_worker("gw1")  # its replacement
    assert core.next_for_worker("gw1") == [3, 4, 5]
    core.mark_complete("gw1", 3)
    assert 3 in core.done


def test_an_empty_answer_for_a_worker_gone_meanwhile_is_no_trouble():
    queue = FakeQueue(give=2)
    core = scheduler(queue, workers=2)
    core.pump()
    core.settle()
    core.next_for_worker("gw0"), core.next_for_worker("gw1")
    core.pump()  # both hold two: asked for ahead
    queue.next = len(IDS)  # nothing fits
    core.remove_worker("gw1")
    core.settle()
    assert "gw1" not in core.asked and core.asked["gw0"] == (0, 1)
    assert not core.server_empty


def test_the_last_answer_tells_the_workers_to_end():
    queue = FakeQueue(state="finished")
    core = scheduler(queue, workers=2)
    queue.answer_now = True  # sent waiting: answered within pump
    assert core.pump() is True and core.pending is None
    assert core.server_empty and not core.has_queued
    assert core.next_for_worker("gw0") == [0, 1, 2]
    assert core.pump() is False and not queue.bodies[1:]  # nothing more asked


def test_completed_units_are_reported_with_the_next_request():
    queue = FakeQueue(give=1)
    core = scheduler(queue, workers=1)
    core.pump()
    core.settle()
    core.next_for_worker("gw0")
    core.mark_complete("gw0", 0)
    core.pump()
    assert core.pending.body["done"] == [0] and core.pending.body["holding"] == []


def test_each_request_names_how_long_answers_take_lately():
    queue = FakeQueue(give=1)
    core = scheduler(queue, workers=1)
    core.pump()
    assert core.pending.body["latency"] == 0.0  # nothing known yet: the dashboard's budget
    core.pending.sent -= 0.2
    core.settle()
    assert core.latency == pytest.approx(0.2, abs=0.05)
    core.next_for_worker("gw0")
    core.pump()
    core.pending.sent -= 0.6
    core.settle()
    assert core.latency == pytest.approx(0.75 * 0.2 + 0.25 * 0.6, abs=0.05)  # a running mean
    core.next_for_worker("gw0")
    core.pump()
    assert core.pending.body["latency"] == pytest.approx(core.latency, abs=1e-3)


# -- the requests themselves (shardhttp), against a local HTTP server -------------------------


class Handler(BaseHTTPRequestHandler):
    answers: list[tuple[int, dict]] = []
    seen: list[dict] = []
    delay = 0.0

    def do_POST(self):  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Handler.seen.append(
            {"path": self.path, "body": body, "auth": self.headers["Authorization"]}
        )
        code, answer = Handler.answers.pop(0)
        time.sleep(Handler.delay)  # the dashboard busy elsewhere
        if code == 0:  # drop the connection without answering
            self.close_connection = True
            self.wfile.flush()
            self.connection.close()
            return
        data = json.dumps(answer).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def serving(context: ssl.SSLContext | None = None):
    """The dashboard's shard URL, served by Handler (over TLS with ``context``) until closed."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if context is not None:
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    Handler.answers, Handler.seen, Handler.delay = [], [], 0.0
    scheme = "https" if context is not None else "http"
    yield f"{scheme}://127.0.0.1:{httpd.server_address[1]}/api/shards/7"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def server():
    yield from serving()


def test_a_request_is_sent_without_waiting_and_its_answer_read_later(server):
    queue = ShardQueue(server, "ptdshard_k")
    Handler.answers = [(200, {"state": "more"})]
    pending = queue.start("/units", {"asks": []})
    assert pending is not None and pending.fileno() >= 0
    assert queue.finish(pending) == {"state": "more"}
    assert pending.conn.sock is None  # closed with its answer
    assert Handler.seen[0]["path"] == "/api/shards/7/units"
    assert Handler.seen[0]["auth"] == "Bearer ptdshard_k"


def test_a_request_without_an_answer_is_sent_again_and_a_refusal_stops(server):
    queue = ShardQueue(server, "k")
    Handler.answers = [(0, {}), (200, {"state": "wait"})]
    pending = queue.start("/units", {"done": [3]})
    assert queue.finish(pending) == {"state": "wait"}
    assert [s["body"] for s in Handler.seen] == [{"done": [3]}, {"done": [3]}]
    Handler.answers = [(409, {"detail": "shard 7 is lost"})]
    with pytest.raises(QueueRefused, match="shard 7 is lost"):
        queue.finish(queue.start("/units", {}))


@pytest.fixture
def tls_server(tmp_path, monkeypatch):
    """The same server over TLS 1.3, with a certificate this process trusts."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # ssl.create_default_context trusts it
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3  # session tickets after the handshake
    context.load_cert_chain(cert, key)
    yield from serving(context)


def test_over_tls_the_controller_waits_for_the_answer_not_for_session_tickets(tls_server):
    """A TLS 1.3 socket turns readable with the server's session tickets, long before the
    answer: ``ready`` says no then (and reads nothing of the answer), yes once it is there."""
    queue = ShardQueue(tls_server, "k")
    Handler.delay = 0.5
    Handler.answers = [(200, {"state": "more", "leases": {"gw0": []}})]
    began = time.monotonic()
    pending = queue.start("/units", {"asks": []})
    assert pending is not None
    checks = []
    while True:
        readable, _, _ = select.select([pending.fileno()], [], [], 5.0)
        assert readable, "the socket never turned readable"
        checks.append((time.monotonic() - began, pending.ready()))
        if checks[-1][1]:
            break
    assert not checks[0][1]  # readable first with the session tickets alone
    assert checks[-1][0] >= 0.45  # ready only once the answer came
    assert queue.finish(pending) == {"state": "more", "leases": {"gw0": []}}
    assert len(Handler.seen) == 1  # read from what ready() took in, not sent again
