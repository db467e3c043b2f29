"""The live page's websocket for a load run: a snapshot with its load so far, then one
"load" message per batch of merged seconds, through the real sink and channel layer."""

import asyncio

import pytest
from channels.db import database_sync_to_async

from runner.loadstats import Entry
from runs.execution.environment import Environment, install
from runs.models import Run
from tests.test_consumers import connect, setup_run

pytestmark = pytest.mark.django_db(transaction=True)
TEST = "t.py::test_item"


def tick(second, samples):
    entry = Entry()
    for ms in samples:
        entry.add(ms)
    return {
        "type": "load_tick",
        "time": 1e9 + second,
        "process": "p0",
        "second": second,
        "users": 3,
        "tests": {TEST: entry.to_dict()},
        "requests": {},
    }


@database_sync_to_async
def make_load(run):
    run.config_snapshot.update(mode="load", users=3, duration=10, thresholds=["p95<100ms"])
    run.save(update_fields=["config_snapshot"])
    return Run.objects.get(pk=run.pk)


async def test_load_messages_reach_the_page_as_seconds_are_merged():
    user, run = await setup_run()
    run = await make_load(run)
    env = Environment(loop=asyncio.get_running_loop())
    install(env)
    try:
        page = await connect(run.id, user)
        assert (await page.connect())[0]
        first = await page.receive_json_from(timeout=5)
        assert first["type"] == "snapshot" and first["load"]["series"] == []
        handle = database_sync_to_async(env.sink.handle_events)
        await handle(run.id, [{"type": "load_start", "time": 1e9, "users": 3, "processes": 1}])
        await handle(run.id, [tick(s, [50.0] * 10) for s in range(3)])  # its one process's
        message = await page.receive_json_from(timeout=5)
        assert message["type"] == "load"
        assert [s["second"] for s in message["seconds"]] == [0, 1, 2]
        assert message["stats"]["total"]["iterations"] == 30
        assert message["thresholds"][0] | {"value": None} == {
            "expr": "p95<100ms",
            "value": None,
            "passed": True,
            "abort": False,
        }
        # A page opened now gets every stored second in its snapshot.
        late = await connect(run.id, user)
        assert (await late.connect())[0]
        snap = await late.receive_json_from(timeout=5)
        assert [s["second"] for s in snap["load"]["series"]] == [0, 1, 2]
        await page.disconnect()
        await late.disconnect()
    finally:
        install(None)
        env.stop()
