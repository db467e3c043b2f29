"""Issue #12 item 2, the server's side: a token uploaded with a run's command line (by an older
plugin) is never stored nor shown (websocket snapshot and `finished` message), and tokens
stored before are redacted by a data migration. The plugin's side is in test_ingest.py."""

import importlib
import json

import pytest
from channels.db import database_sync_to_async
from django.apps import apps
from django.contrib.auth import get_user_model
from django.test import Client

from runner.client.ingestion import strip_token
from runs.execution.environment import install
from runs.models import ApiToken, Run, Suite
from tests.factories import DEMO_DIR
from tests.test_consumers import connect, serving

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_plugin_strips_both_spellings_and_the_token_text():
    args = ["-n", "2", "--ptd-token", "ptd_SECRET", "--ptd-token=ptd_SECRET", "-k", "ptd_SECRET"]
    assert strip_token(args, "ptd_SECRET") == ["-n", "2", "-k", "[redacted]"]
    assert strip_token(["--ptd-token"]) == []


@database_sync_to_async
def ingest_with_token_in_args():
    user = get_user_model().objects.create_user("ci", password="pw-ci-12345678")
    Suite.objects.create(name="remote", path=str(DEMO_DIR))
    _, token = ApiToken.create_for(user, "ci")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    args = ["-n", "2", "--ptd-token", token, f"--ptd-token={token}", f"--junitxml={token}.xml"]
    created = client.post(
        "/api/ingest/runs",
        {"suite": "remote", "args": args, "ci_url": f"https://ci/?t={token}"},
        content_type="application/json",
    )
    assert created.status_code == 201, created.content
    return user, token, client, created.json()["id"]


@database_sync_to_async
def finish(client, run_id):
    response = client.post(
        f"/api/ingest/runs/{run_id}/finish",
        {"exitstatus": 0, "wall_seconds": 1.0},
        content_type="application/json",
    )
    assert response.status_code == 200, response.content


async def test_a_token_in_uploaded_args_is_never_stored_nor_sent():
    user, token, client, run_id = await ingest_with_token_in_args()
    run = await database_sync_to_async(Run.objects.get)(pk=run_id)
    assert token not in json.dumps(run.config_snapshot) + run.ci_url
    assert run.config_snapshot["extra_args"] == ["-n", "2", "--junitxml=ptd_[redacted].xml"]
    serving()
    try:
        page = await connect(run_id, user)
        assert (await page.connect())[0]
        snapshot = await page.receive_json_from(timeout=5)
        assert snapshot["type"] == "snapshot" and token not in json.dumps(snapshot)
        await finish(client, run_id)
        finished = await page.receive_json_from(timeout=5)
        while finished["type"] != "finished":
            finished = await page.receive_json_from(timeout=5)
        assert finished["run"]["status"] == "passed" and token not in json.dumps(finished)
        await page.disconnect()
    finally:
        install(None)


def test_the_data_migration_redacts_tokens_stored_before():
    suite = Suite.objects.create(name="old", path=str(DEMO_DIR))
    token = "ptd_" + "A1b2-C3d4_" * 4 + "xyz"
    leaky = Run.objects.create(
        suite=suite,
        config_snapshot={"extra_args": ["-n", "2", "--ptd-token", token], "host": "ci"},
    )
    clean = Run.objects.create(suite=suite, config_snapshot={"extra_args": ["-x"]})
    migration = importlib.import_module("runs.migrations.0006_redact_tokens_in_run_args")
    migration.redact(apps, None)
    leaky.refresh_from_db()
    assert leaky.config_snapshot == {
        "extra_args": ["-n", "2", "--ptd-token", "ptd_[redacted]"],
        "host": "ci",
    }
    clean.refresh_from_db()
    assert clean.config_snapshot == {"extra_args": ["-x"]}
