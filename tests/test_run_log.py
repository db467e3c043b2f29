"""Issue #12 items 8 and 10: interrupted runs keep their figures; run logs have a size cap."""

from __future__ import annotations

import subprocess
import sys

import pytest
from django.test import Client, override_settings
from django.utils import timezone

from runs.execution import launch
from runs.execution.environment import Environment, installed
from runs.models import Run, RunConfig, Suite
from tests.factories import DEMO_DIR, make_run, write_suite
from tests.test_dispatcher import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

TALKATIVE = (
    "def test_prints_a_lot():\n"
    "    print('HEAD-OF-OUTPUT')\n"
    "    for i in range(20_000):\n"
    "        print(f'{i:08d} a line of a test that says too much')\n"
    "    assert False, 'END-OF-OUTPUT'\n"
)
CAP = 16384


@pytest.fixture
def users(django_user_model):
    staff = django_user_model.objects.create_user("alice", password="pw-alice-1234", is_staff=True)
    member = django_user_model.objects.create_user("bob", password="pw-bob-1234")
    return staff, member


def run_to_the_end(suite: Suite) -> Run:
    """Launch a 1-worker run of `suite` through a dispatcher of its own; the finished run."""
    RunConfig.objects.create(suite=suite, name="default", is_default=True, workers=1)
    with installed(Environment()) as env:
        env.start_dispatcher(max_concurrent=1, poll=0.1)
        run = launch.launch(suite)
        wait_until(lambda: not Run.objects.get(pk=run.pk).is_active, timeout=120)
    run.refresh_from_db()
    return run


@override_settings(PTD_MAX_LOG_BYTES=CAP)
def test_a_real_run_printing_more_than_the_cap_keeps_head_and_tail_and_says_so(tmp_path, users):
    path = write_suite(tmp_path / "talkative", {"test_talk.py": TALKATIVE})
    suite = Suite.objects.create(name="talkative", path=str(path))
    run = run_to_the_end(suite)
    assert run.status == Run.Status.FAILED and run.tests_failed == 1
    log = launch.log_path(run).read_bytes()
    assert run.log_bytes_cut > 20_000 * 30  # the printed lines, all but the kept ends
    assert len(log) < CAP + 300
    assert b"HEAD-OF-OUTPUT" in log[: CAP // 2]
    assert b"bytes of output cut here" in log and b"END-OF-OUTPUT" in log[-CAP // 2 :]
    staff, member = users
    client = Client()
    client.force_login(member)
    page = client.get(f"/runs/{run.id}/").content.decode()
    assert '<p class="muted" id="log-cut">' in page and 'id="log-link"' not in page
    assert client.get(f"/runs/{run.id}/log/").status_code == 403
    client.force_login(staff)
    response = client.get(f"/runs/{run.id}/log/")
    assert response.status_code == 200 and b"".join(response.streaming_content) == log


def test_runs_marked_interrupted_at_start_up_count_their_stored_results():
    suite = Suite.objects.create(name="demo", path=str(DEMO_DIR))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    results = [
        ("t.py::a", "gw0", "passed", 0.5),
        ("t.py::b", "gw1", "failed", 0.25),
        ("t.py::c", "gw0", "skipped", 0.0),
    ]
    run = make_run(suite, results=results, status=Run.Status.RUNNING, started_at=timezone.now())
    Run.objects.filter(pk=run.pk).update(runner_host=launch.HOST, runner_pid=dead.pid)
    assert launch.mark_interrupted() == 1
    run.refresh_from_db()
    assert run.status == Run.Status.INTERRUPTED and run.finished_at is not None
    assert run.message == "The process running it stopped before it finished."
    tests = run.tests_dict()
    assert (tests["total"], tests["passed"], tests["failed"], tests["skipped"]) == (3, 1, 1, 1)
    assert run.serial_seconds == pytest.approx(0.75)


@override_settings(PTD_EXTERNAL_TIMEOUT=60)
def test_silent_outside_runs_count_their_stored_results_too():
    suite = Suite.objects.create(name="demo", path=str(DEMO_DIR))
    long_ago = timezone.now() - timezone.timedelta(hours=2)
    run = make_run(
        suite,
        results=[("t.py::a", "gw0", "passed", 0.5), ("t.py::b", "gw0", "passed", 0.5)],
        status=Run.Status.RUNNING,
        trigger=Run.Trigger.EXTERNAL,
        started_at=long_ago,
    )
    assert launch.expire_silent_external_runs() == 1
    run.refresh_from_db()
    assert run.status == Run.Status.INTERRUPTED and "No news" in run.message
    assert (run.tests_total, run.tests_passed) == (2, 2)


LEAKY = (
    "import os\n"
    "def test_prints_a_secret_then_dies():\n"
    "    print('the deploy token is', os.environ['DEPLOY_TOKEN'], flush=True)\n"
    "    os._exit(3)\n"
)


def test_a_run_s_public_message_leaves_its_log_out(tmp_path, users, django_user_model):
    """Finding M2: a test that prints a secret of the suite's environment (-s) and kills its
    pytest: the run's message, which every member reads (API, page, websocket), says how the
    run ended and where the details are; the secret is in the log, which only staff read."""
    secret = "s3cr3t-deploy-token-M2"
    path = write_suite(tmp_path / "leaky", {"test_leak.py": LEAKY})
    suite = Suite.objects.create(
        name="leaky", path=str(path), pytest_args=["-s"], env={"DEPLOY_TOKEN": secret}
    )
    run = run_to_the_end(suite)
    assert run.status == Run.Status.ERROR and secret not in run.message, run.message
    assert run.message == (
        "pytest exited with code 3 (internal error) before finishing the session\n"
        "The run's log has the details."
    )
    staff, _ = users
    other = django_user_model.objects.create_user("carol", password="pw-carol-1234")
    client = Client()
    client.force_login(other)
    response = client.get(f"/api/runs/{run.id}")
    assert response.status_code == 200 and "details" in response.json()["message"]
    assert secret not in response.content.decode()
    assert secret not in client.get(f"/runs/{run.id}/").content.decode()
    assert client.get(f"/runs/{run.id}/log/").status_code == 403
    client.force_login(staff)
    log = b"".join(client.get(f"/runs/{run.id}/log/").streaming_content).decode()
    assert f"the deploy token is {secret}" in log
