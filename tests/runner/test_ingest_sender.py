"""The ingestion plugin's sender: batches, numbering, and a dashboard failing mid-run."""

from __future__ import annotations

import json

import pytest

from runner.client import ingestion
from runner.client import plugin as ingest


class FakeDashboard:
    """Stands in for the dashboard's HTTP API (ingest.Connection); its 2nd events POST fails,
    either before the server stored it ("request") or after, the answer lost ("answer")."""

    instances: list[FakeDashboard] = []
    lose = "request"

    def __init__(self, url: str, token: str):
        self.posts: list[tuple[int, list[dict]]] = []  # (first_seq, events) as received
        self.attempts = 0
        self.finished = None
        FakeDashboard.instances.append(self)

    def create_run(self, header: dict) -> int:
        return 7

    def send(self, run_id: int, events: list[dict], first_seq: int = 0) -> None:
        for start in range(0, len(events), ingest.BATCH_MAX):
            self.attempts += 1
            failing = self.attempts == 2
            if failing and self.lose == "request":
                raise ingest.Unreachable("connection refused")
            self.posts.append((first_seq + start, events[start : start + ingest.BATCH_MAX]))
            if failing and self.lose == "answer":
                raise ingest.Unreachable("read timed out")

    def finish(self, run_id: int, exitstatus: int, wall_seconds: float) -> dict:
        self.finished = (run_id, exitstatus)
        return {"url": f"/runs/{run_id}/", "status": "passed"}

    def stored(self) -> list[str]:
        """What the server keeps: each numbered event once (runs/ingest.py skips the rest)."""
        by_seq: dict[int, dict] = {}
        for first, events in self.posts:
            for offset, event in enumerate(events):
                assert by_seq.setdefault(first + offset, event) == event, "a number reused"
        assert sorted(by_seq) == list(range(len(by_seq))), "a gap in the numbering"
        return [by_seq[i].get("nodeid", by_seq[i]["type"]) for i in sorted(by_seq)]


@pytest.fixture
def dashboard(monkeypatch):
    FakeDashboard.instances.clear()
    monkeypatch.setattr(ingest, "Connection", FakeDashboard)
    return FakeDashboard.instances


def run_session(tmp_path, tests: int) -> ingest.Sender:
    sender = ingest.Sender("http://ptd.invalid", "t", {"suite": "s"}, tmp_path / "spool", 0.0)
    for i in range(tests):
        sender.emit({"type": "test", "nodeid": f"t.py::test_{i}", "outcome": "passed"})
    sender.emit({"type": "session_finish", "exitstatus": 0})
    sender.close(timeout=30)
    return sender


@pytest.mark.parametrize("lose", ["request", "answer"])
def test_a_failed_post_is_spooled_and_sent_again_under_the_same_numbers(
    dashboard, tmp_path, monkeypatch, lose
):
    monkeypatch.setattr(FakeDashboard, "lose", lose)
    total = ingest.BATCH_MAX + 1000
    sender = run_session(tmp_path, total)
    (conn,) = dashboard
    expected = [f"t.py::test_{i}" for i in range(total)] + ["session_finish"]
    assert conn.stored() == expected  # every event once, in order: none lost, none twice
    assert conn.finished == (7, 0)
    assert not (tmp_path / "spool").exists()  # uploaded at the end, then removed
    notices = []
    while not sender.notices.empty():
        notices.append(sender.notices.get())
    assert any("unreachable" in n for n in notices), notices


def test_close_during_the_batch_wait_sends_at_once(dashboard, tmp_path):
    sender = ingest.Sender("http://ptd.invalid", "t", {"suite": "s"}, tmp_path / "s", 0.0)
    sender.emit({"type": "test", "nodeid": "t.py::test_one", "outcome": "passed"})
    sender.emit({"type": "session_finish", "exitstatus": 1})
    sender.close(timeout=ingest.FLUSH_SECONDS / 2)  # less than the batch wait: it must not wait
    assert not sender._thread.is_alive()
    (conn,) = dashboard
    assert conn.posts == [(0, conn.posts[0][1])]
    assert [e["type"] for e in conn.posts[0][1]] == ["test", "session_finish"]
    assert conn.finished == (7, 1)


def test_posts_stay_under_the_body_limit_with_contiguous_numbers(monkeypatch):
    """Long tracebacks make big batches: each POST stays under the server's limit (a 413)."""
    posted: list[tuple[str, bytes]] = []
    monkeypatch.setattr(ingest.Connection, "post", lambda self, path, body: posted.append(body))
    conn = ingest.Connection.__new__(ingest.Connection)
    events = [
        {"type": "test", "nodeid": f"t.py::t{i}", "outcome": "failed", "longrepr": "x" * 4000}
        for i in range(1500)
    ]
    conn.send(7, events, first_seq=10)
    bodies = [json.loads(body) for body in posted]
    assert len(bodies) > 1 and all(len(body) <= ingestion.BODY_MAX + 100 for body in posted)
    seqs = [b["first_seq"] for b in bodies]
    counts = [len(b["events"]) for b in bodies]
    assert seqs == [10 + sum(counts[:i]) for i in range(len(counts))]
    assert [e["nodeid"] for b in bodies for e in b["events"]] == [e["nodeid"] for e in events]
