"""The run websocket: auth refused, snapshot first, then increments; late joiners lose nothing."""

import asyncio

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.test import Client

from dashboard.asgi import application
from runner.pool import RunOutcome
from runs.execution.environment import Environment, install
from runs.execution.sink import finish_run
from runs.live import consumers
from runs.live import publish as live
from runs.models import Run, RunConfig, Suite
from tests.factories import DEMO_DIR, test_event

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def snapshots_not_rationed(monkeypatch):
    """Each test's users start afresh (ids repeat from test to test), with a short interval
    between two snapshots to a user (late joiners here are the same user)."""
    monkeypatch.setattr(consumers, "_last_by_user", {})
    monkeypatch.setattr(consumers, "SNAPSHOT_EVERY", 0.2)


@database_sync_to_async
def setup_run():
    user = get_user_model().objects.create_user("carol", password="pw-carol-1234")
    suite = Suite.objects.create(name="ws-suite", path=str(DEMO_DIR))
    config = RunConfig.objects.create(suite=suite, name="default", is_default=True)
    run = Run.objects.create(
        suite=suite, config=config, status="running", workers=2, config_snapshot={"workers": 2}
    )
    return user, run


@database_sync_to_async
def session_cookie(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


async def connect(run_id, user=None):
    """A client through the whole ASGI stack (origin check, session auth), as a browser."""
    headers = [(b"host", b"localhost"), (b"origin", b"http://localhost")]
    if user is not None:
        headers.append((b"cookie", await session_cookie(user)))
    return WebsocketCommunicator(application, f"/ws/runs/{run_id}/", headers=headers)


async def watching(run_id, user):
    """A connected client that has taken its first snapshot (returned with it)."""
    communicator = await connect(run_id, user)
    assert (await communicator.connect())[0]
    snapshot = await communicator.receive_json_from(timeout=5)
    assert snapshot["type"] == "snapshot", snapshot
    return communicator, snapshot


def serving() -> Environment:
    """This test's process environment, serving on the test's loop (as `serve` binds its own)."""
    env = Environment(loop=asyncio.get_running_loop())
    install(env)
    return env


async def test_anonymous_connection_is_refused():
    _, run = await setup_run()
    communicator = await connect(run.id)
    connected, code = await communicator.connect()
    assert not connected  # the handshake is rejected


async def test_snapshot_then_increments_then_late_join():
    user, run = await setup_run()
    env = serving()
    sink = env.sink
    try:
        first = await connect(run.id, user)
        connected, _ = await first.connect()
        assert connected
        snapshot = await first.receive_json_from(timeout=5)
        assert snapshot["type"] == "snapshot" and snapshot["results"] == []
        assert snapshot["run"]["status"] == "running"

        events = [
            {"type": "collected", "count": 3},
            test_event("t.py::a"),
            test_event("t.py::b", "failed", worker="gw1"),
        ]
        await database_sync_to_async(sink.handle_events)(run.id, events)
        batch = await first.receive_json_from(timeout=5)
        assert batch["type"] == "results"
        assert [r["nodeid"] for r in batch["results"]] == ["t.py::a", "t.py::b"]
        assert batch["progress"] == {"done": 2, "failed": 1, "collected": 3}
        assert {w["id"] for w in batch["workers"]} == {"gw0", "gw1"}

        late = await connect(run.id, user)
        assert (await late.connect())[0]
        late_snapshot = await late.receive_json_from(timeout=5)
        assert {r["nodeid"] for r in late_snapshot["results"]} == {"t.py::a", "t.py::b"}
        assert late_snapshot["run"]["collected"] == 3
        assert {w["id"] for w in late_snapshot["workers"]} == {"gw0", "gw1"}
        await first.disconnect()
        await late.disconnect()
    finally:
        install(None)


async def test_a_finished_run_shows_no_test_as_current():
    user, run = await setup_run()
    env = serving()
    try:
        events = [test_event("t.py::a"), test_event("t.py::b", worker="gw1")]
        await database_sync_to_async(env.sink.handle_events)(run.id, events)
        await database_sync_to_async(finish_run)(
            run.id, RunOutcome(run.id, 0, 1.0, None), history=env.history
        )
        communicator = await connect(run.id, user)
        assert (await communicator.connect())[0]
        snapshot = await communicator.receive_json_from(timeout=5)
        assert snapshot["run"]["status"] == "passed"
        assert {w["id"]: w["current_test"] for w in snapshot["workers"]} == {"gw0": "", "gw1": ""}
        await communicator.disconnect()
    finally:
        install(None)


async def test_only_a_watched_run_is_published(settings):
    settings.REDIS_URL = ""  # the in-memory layer: only this process's consumers can listen
    user, run = await setup_run()
    env = serving()
    try:
        assert not env.publisher.reachable(run.id)  # nobody watches: the sink builds no messages
        first, second = await connect(run.id, user), await connect(run.id, user)
        assert (await first.connect())[0] and (await second.connect())[0]
        assert env.publisher.reachable(run.id) and not env.publisher.reachable(run.id + 1)
        await first.disconnect()
        assert env.publisher.reachable(run.id)  # the other page still watches
        await second.disconnect()
        assert not env.publisher.reachable(run.id)
    finally:
        install(None)
    assert not Environment().publisher.reachable(run.id)  # a command: no server loop


async def test_unknown_run_closes_with_error():
    user, _ = await setup_run()
    communicator = await connect(999999, user)
    assert (await communicator.connect())[0]
    message = await communicator.receive_json_from(timeout=5)
    assert message["type"] == "error"
    closed = await communicator.receive_output(timeout=2)
    assert closed == {"type": "websocket.close", "code": 4404}
    await communicator.disconnect()


async def test_malformed_client_messages_are_ignored(monkeypatch):
    monkeypatch.setattr(consumers, "SNAPSHOT_EVERY", 0.0)
    user, run = await setup_run()
    communicator, _ = await watching(run.id, user)
    for text in ("not json", "[1, 2]", '"snapshot"', "null"):
        await communicator.send_to(text_data=text)
    await communicator.send_to(bytes_data=b"\x00\x01")
    await communicator.send_json_to({"type": "snapshot"})  # the socket is still open and served
    assert (await communicator.receive_json_from(timeout=5))["type"] == "snapshot"
    await communicator.disconnect()


async def test_snapshots_asked_for_in_a_burst_come_as_one(monkeypatch):
    """A snapshot is megabytes asked for with a few bytes: a client asking in a loop gets one
    per interval, and every request of a burst is answered by the same one."""
    monkeypatch.setattr(consumers, "SNAPSHOT_EVERY", 0.5)
    user, run = await setup_run()
    communicator, _ = await watching(run.id, user)
    for _ in range(50):
        await communicator.send_json_to({"type": "snapshot"})
    assert (await communicator.receive_json_from(timeout=5))["type"] == "snapshot"
    assert await communicator.receive_nothing(timeout=1.0)  # two intervals: no second one
    await communicator.send_json_to({"type": "snapshot"})  # the interval is over: at once
    assert (await communicator.receive_json_from(timeout=0.4))["type"] == "snapshot"
    await communicator.disconnect()


async def test_a_snapshot_put_off_is_dropped_with_its_connection(monkeypatch):
    monkeypatch.setattr(consumers, "SNAPSHOT_EVERY", 30.0)
    user, run = await setup_run()
    communicator, _ = await watching(run.id, user)
    await communicator.send_json_to({"type": "snapshot"})
    assert await communicator.receive_nothing(timeout=0.2)
    await communicator.disconnect()  # the put-off snapshot is cancelled, not sent to nobody
    owed = [t for t in asyncio.all_tasks() if "fresh_snapshot" in repr(t.get_coro())]
    assert owed == []


async def test_reconnecting_in_a_loop_gets_no_more_snapshots_than_asking(monkeypatch):
    monkeypatch.setattr(consumers, "SNAPSHOT_EVERY", 0.6)
    user, run = await setup_run()
    first, _ = await watching(run.id, user)
    await first.disconnect()
    again = await connect(run.id, user)
    assert (await again.connect())[0]
    assert await again.receive_nothing(timeout=0.3)  # this user just had one: put off
    assert (await again.receive_json_from(timeout=5))["type"] == "snapshot"  # then it comes
    await again.disconnect()


async def test_a_snapshot_put_off_that_fails_closes_the_socket_for_the_page_to_ask_again(
    monkeypatch,
):
    monkeypatch.setattr(consumers, "SNAPSHOT_EVERY", 0.3)
    user, run = await setup_run()
    communicator, _ = await watching(run.id, user)

    def broken(run_id):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(consumers, "snapshot", broken)
    await communicator.send_json_to({"type": "snapshot"})  # put off, then fails
    closed = await communicator.receive_output(timeout=5)
    assert closed["type"] == "websocket.close"


async def test_a_big_snapshot_arrives_in_several_messages(monkeypatch):
    """A run's snapshot can exceed the server's 1 MiB frame limit: it is split, nothing lost."""
    user, run = await setup_run()
    monkeypatch.setattr(live, "MESSAGE_BUDGET", 2000)
    sink = Environment().sink  # stores only: nobody watches yet
    events = [test_event(f"t.py::test_{i}", start=1000.0 + i) for i in range(40)]
    await database_sync_to_async(sink.handle_events)(run.id, events)
    communicator = await connect(run.id, user)
    assert (await communicator.connect())[0]
    snapshot = await communicator.receive_json_from(timeout=5)
    assert snapshot["type"] == "snapshot" and 0 < len(snapshot["results"]) < 40
    nodeids = [r["nodeid"] for r in snapshot["results"]]
    while len(nodeids) < 40:
        more = await communicator.receive_json_from(timeout=5)
        assert more["type"] == "results"
        nodeids += [r["nodeid"] for r in more["results"]]
    assert nodeids == [f"t.py::test_{i}" for i in range(40)]
    await communicator.disconnect()


async def test_messages_are_numbered_and_the_snapshot_carries_the_last_number():
    user, run = await setup_run()
    env = serving()
    sink = env.sink
    try:
        first = await connect(run.id, user)
        assert (await first.connect())[0]
        snapshot = await first.receive_json_from(timeout=5)
        start = snapshot["seq"]
        await database_sync_to_async(sink.handle_events)(run.id, [test_event("t.py::a")])
        await database_sync_to_async(sink.handle_events)(
            run.id, [test_event("t.py::b", worker="gw1")]
        )
        outcome = RunOutcome(run.id, 0, 1.0, None)
        await database_sync_to_async(sink.run_finished)(run.id, outcome)
        messages = [await first.receive_json_from(timeout=5) for _ in range(3)]
        assert [m["type"] for m in messages] == ["results", "results", "finished"]
        assert [m["seq"] for m in messages] == [start + 1, start + 2, start + 3]
        # A client connecting now is told the last number: nothing of the above comes again.
        late = await connect(run.id, user)
        assert (await late.connect())[0]
        late_snapshot = await late.receive_json_from(timeout=5)
        assert late_snapshot["seq"] == start + 3
        assert {r["nodeid"] for r in late_snapshot["results"]} == {"t.py::a", "t.py::b"}
        assert late_snapshot["run"]["tests"]["total"] == 2
        await first.disconnect()
        await late.disconnect()
    finally:
        install(None)


async def test_a_client_that_missed_a_message_sees_the_gap_and_resyncs(monkeypatch):
    """A message the channel layer drops (a full client queue) shows as a gap in the
    numbers; the client asks for a snapshot and gets what it missed."""
    user, run = await setup_run()
    env = serving()
    layer = get_channel_layer()
    real_send, dropped = layer.group_send, []

    async def lossy_send(group, event):
        if event["message"].get("results") and not dropped:
            dropped.append(event["message"]["seq"])  # lost on its way, as ChannelFull does
            return
        await real_send(group, event)

    monkeypatch.setattr(layer, "group_send", lossy_send)
    sink = env.sink
    try:
        client = await connect(run.id, user)
        assert (await client.connect())[0]
        seq = (await client.receive_json_from(timeout=5))["seq"]
        for name in ("t.py::lost", "t.py::next"):
            await database_sync_to_async(sink.handle_events)(run.id, [test_event(name)])
        message = await client.receive_json_from(timeout=5)
        assert [r["nodeid"] for r in message["results"]] == ["t.py::next"]
        assert message["seq"] == seq + 2 and dropped == [seq + 1]  # a gap: seq + 1 is missing
        await client.send_json_to({"type": "snapshot"})
        resync = await client.receive_json_from(timeout=5)
        assert resync["type"] == "snapshot" and resync["seq"] == seq + 2
        assert {r["nodeid"] for r in resync["results"]} == {"t.py::lost", "t.py::next"}
        await client.disconnect()
    finally:
        install(None)


async def test_a_path_that_names_no_run_closes_with_4404_not_a_500():
    """Review L10: /ws/runs/abc/ and the like were a 500 and a traceback (no route matched)."""
    user, _ = await setup_run()
    serving()
    for run_id in ("abc", "-1", "99999999999999999999", "1/extra"):
        communicator = await connect(run_id, user)
        connected, _ = await communicator.connect()
        assert connected, run_id
        closed = await communicator.receive_output(timeout=2)
        assert closed == {"type": "websocket.close", "code": 4404}, run_id
        await communicator.disconnect()
