"""The ingestion plugin's sender: batches, and what happens when the dashboard fails mid-run."""

from __future__ import annotations

import pytest

from runner import ingest


class FlakyDashboard:
    """Stands in for the dashboard's HTTP API (ingest.Connection): it fails one POST."""

    instances: list[FlakyDashboard] = []

    def __init__(self, url: str, token: str):
        self.posts: list[list[dict]] = []
        self.fail_post = 2  # the second events POST gets no answer
        self.finished = None
        FlakyDashboard.instances.append(self)

    def create_run(self, header: dict) -> int:
        return 7

    def send(self, run_id: int, events: list[dict]) -> None:
        for start in range(0, len(events), ingest.BATCH_MAX):
            if len(self.posts) + 1 == self.fail_post:
                self.fail_post = 0
                raise ingest.Unreachable("timed out")
            self.posts.append(events[start : start + ingest.BATCH_MAX])

    def finish(self, run_id: int, exitstatus: int, wall_seconds: float) -> dict:
        self.finished = (run_id, exitstatus)
        return {"url": f"/runs/{run_id}/", "status": "passed"}


@pytest.fixture
def dashboard(monkeypatch):
    FlakyDashboard.instances.clear()
    monkeypatch.setattr(ingest, "Connection", FlakyDashboard)
    return FlakyDashboard.instances


def test_a_failed_post_spools_only_what_was_not_sent(dashboard, tmp_path):
    spool = tmp_path / "spool.jsonl"
    sender = ingest.Sender("http://ptd.invalid", "t", {"suite": "s"}, spool, started=0.0)
    total = ingest.BATCH_MAX + 1000
    for i in range(total):
        sender.emit({"type": "test", "nodeid": f"t.py::test_{i}", "outcome": "passed"})
    sender.emit({"type": "session_finish", "exitstatus": 0})
    sender.close(timeout=30)
    (conn,) = dashboard
    sent = [e["nodeid"] for post in conn.posts for e in post if e["type"] == "test"]
    assert len(sent) == total == len(set(sent))  # every test once: none lost, none twice
    assert conn.finished == (7, 0)
    assert not spool.exists()  # uploaded at the end, then removed
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
    assert [e["type"] for e in conn.posts[0]] == ["test", "session_finish"]
    assert conn.finished == (7, 1)
