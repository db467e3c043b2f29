"""Issue #17 item 4: what tests printed (stdout, stderr, log records), capped, on every surface.

Real runs of a suite whose failing tests print: the stored results, the API's results, the
JUnit XML, the test's history page; the caps per test and per run; passing tests' output only
under capture_passed; everything escaped. The live run page's part is in test_browser_live.py.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
from _ptd_inrun.output import OutputBudget, cut, streams_of
from django.test import Client, override_settings

from runner import options
from runs.execution import launch
from runs.execution.environment import Environment, installed
from runs.models import ApiToken, Run, RunConfig, Suite, TestResult
from tests.factories import test_event, write_suite
from tests.test_dispatcher import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

NOISY = """\
import logging, sys
import pytest


@pytest.fixture
def chatty():
    print("SETUP-OUT")
    yield
    print("TEARDOWN-OUT")


def test_fails_noisily(chatty):
    print("CALL-OUT")
    sys.stderr.write("CALL-ERR\\n")
    logging.getLogger("noisy").warning("CALL-LOG")
    assert False


def test_megabyte():
    print("HEAD" + "x" * 1_000_000 + "TAIL")
    assert False


def test_script():
    print("<script>window.pwned = 1</script>")
    assert False


def test_passes():
    print("PASSING-OUT")


def test_nul():
    print("NUL\\x00BYTE")
    assert False
"""
PER_TEST = 4096


@pytest.fixture
def users(django_user_model):
    staff = django_user_model.objects.create_user("alice", password="pw-alice-1234", is_staff=True)
    member = django_user_model.objects.create_user("bob", password="pw-bob-1234")
    other = django_user_model.objects.create_user("carol", password="pw-carol-1234")
    return staff, member, other


@pytest.fixture
def noisy(tmp_path):
    path = write_suite(tmp_path / "noisy", {"test_noisy.py": NOISY})
    suite = Suite.objects.create(name="noisy", path=str(path))
    RunConfig.objects.create(suite=suite, name="default", is_default=True, workers=2)
    return suite


def run_to_the_end(suite: Suite, user, **overrides) -> Run:
    with installed(Environment()) as env:
        env.start_dispatcher(max_concurrent=1, poll=0.1)
        run = launch.launch(suite, user=user, overrides=overrides)
        wait_until(lambda: not Run.objects.get(pk=run.pk).is_active, timeout=120)
    run.refresh_from_db()
    assert run.status == Run.Status.FAILED, run.message
    return run


def results_of(run: Run) -> dict[str, TestResult]:
    return {r.nodeid.split("::")[-1]: r for r in run.results.all()}


@pytest.mark.parametrize("engine", ["fork", "xdist"])
@override_settings(PTD_MAX_OUTPUT_PER_TEST=PER_TEST)
def test_a_failing_tests_output_is_stored_and_shown_everywhere(noisy, users, engine):
    staff, member, other = users
    run = run_to_the_end(noisy, member, engine=engine)
    tests = results_of(run)
    noisily = tests["test_fails_noisily"]
    # Every phase's stdout, in order and labelled; stderr and the log record of the call.
    assert noisily.stdout == (
        "--- setup ---\nSETUP-OUT\n--- call ---\nCALL-OUT\n--- teardown ---\nTEARDOWN-OUT\n"
    )
    assert noisily.stderr == "CALL-ERR\n"
    assert "WARNING" in noisily.log and "CALL-LOG" in noisily.log
    # The cap per test: head and tail of a megabyte, and how much was cut.
    big = tests["test_megabyte"].stdout
    assert len(big.encode()) <= PER_TEST + 100
    assert big.startswith("HEAD") and big.rstrip().endswith("TAIL")
    assert f"[… {1_000_009 - PER_TEST} bytes cut]" in big
    assert tests["test_nul"].stdout == "NUL\ufffdBYTE\n"  # PostgreSQL refuses NUL
    # A passing test's output is not kept by default.
    assert tests["test_passes"].stdout == ""

    client = Client()
    client.force_login(member)
    # The API's results carry the three fields.
    rows = client.get(f"/api/runs/{run.id}/results?outcome=failed").json()["items"]
    by_name = {r["nodeid"].split("::")[-1]: r for r in rows}
    assert by_name["test_fails_noisily"]["stderr"] == "CALL-ERR\n"
    assert "CALL-LOG" in by_name["test_fails_noisily"]["log"]
    assert by_name["test_script"]["stdout"] == "<script>window.pwned = 1</script>\n"
    # JUnit: system-out holds stdout and the log records, system-err stderr.
    root = ET.fromstring(client.get(f"/api/runs/{run.id}/junit.xml").content)
    case = next(c for c in root.iter("testcase") if c.get("name") == "test_fails_noisily")
    assert "CALL-OUT" in case.find("system-out").text
    assert "CALL-LOG" in case.find("system-out").text
    assert case.find("system-err").text == "CALL-ERR\n"
    passing = next(c for c in root.iter("testcase") if c.get("name") == "test_passes")
    assert (
        passing.find("system-err") is None and "PASSING-OUT" not in passing.find("system-out").text
    )
    # The test's history page shows it, escaped.
    page = client.get("/suites/noisy/tests/test_noisy.py::test_script").content.decode()
    assert "&lt;script&gt;window.pwned = 1&lt;/script&gt;" in page
    assert "<script>window.pwned" not in page
    page = client.get("/suites/noisy/tests/test_noisy.py::test_fails_noisily").content.decode()
    assert "captured stderr" in page and "CALL-ERR" in page
    # The run page links the whole log for its launcher and staff, not for other members.
    assert 'id="log-link"' in client.get(f"/runs/{run.id}/").content.decode()
    assert client.get(f"/runs/{run.id}/log/").status_code == 200
    client.force_login(other)
    assert 'id="log-link"' not in client.get(f"/runs/{run.id}/").content.decode()
    assert client.get(f"/runs/{run.id}/log/").status_code == 403
    client.force_login(staff)
    assert client.get(f"/runs/{run.id}/log/").status_code == 200


@override_settings(PTD_MAX_OUTPUT_PER_TEST=2048, PTD_MAX_OUTPUT_PER_RUN=1024)
def test_capture_passed_keeps_passing_output_and_the_run_cap_holds(noisy, users):
    _, member, _ = users
    run = run_to_the_end(noisy, member, capture_passed=True, engine="xdist")
    assert run.config_snapshot["capture_passed"] is True
    tests = results_of(run)
    kept = sum(
        len(getattr(r, f).encode()) for r in tests.values() for f in ("stdout", "stderr", "log")
    )
    # The run's cap, plus at most one notice (a cut, the cap reached: < 120 bytes) per stream
    # of the attempt that reached it and one line for each attempt after it.
    assert kept <= 1024 + 3 * 120 + len(tests) * 70
    everything = "".join(r.stdout for r in tests.values())
    assert "the run's output cap (PTD_MAX_OUTPUT_PER_RUN) is reached" in everything
    # Without the option: no passing output (a run of its own, default caps).
    plain = run_to_the_end(noisy, member, engine="fork")
    assert results_of(plain)["test_passes"].stdout == ""


def test_capture_passed_is_one_launch_option_everywhere(noisy, users):
    _, member, _ = users
    assert options.clean("capture_passed", "yes") is True
    assert options.clean("capture_passed", False) is False
    with pytest.raises(ValueError, match="true or false"):
        options.clean("capture_passed", "maybe")
    _, token = ApiToken.create_for(member, "ci")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    refused = client.post(
        "/api/runs", {"suite": "noisy", "capture_passed": "yes"}, content_type="application/json"
    )
    assert refused.status_code == 422 and "detail" in refused.json()
    made = client.post(
        "/api/runs", {"suite": "noisy", "capture_passed": True}, content_type="application/json"
    )
    assert made.status_code == 201, made.content
    assert Run.objects.get(pk=made.json()["id"]).config_snapshot["capture_passed"] is True
    env = launch.build_spec(Run.objects.get(pk=made.json()["id"])).env
    assert env["PTD_CAPTURE_PASSED"] == "1" and int(env["PTD_MAX_OUTPUT_PER_TEST"]) > 0
    # The launch form: "as configured", yes or no.
    page = Client()
    page.force_login(member)
    config = noisy.default_config().pk
    response = page.post("/suites/noisy/", {"config": config, "capture_passed": "yes"})
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Run.objects.latest("id").config_snapshot["capture_passed"] is True
    page.post("/suites/noisy/", {"config": config, "capture_passed": ""})
    assert Run.objects.latest("id").config_snapshot["capture_passed"] is False  # as configured
    assert page.post("/suites/noisy/", {"config": config, "capture_passed": "x"}).status_code == 400


def test_ingested_output_is_stored_and_cut_to_the_servers_cap(users):
    _, member, _ = users
    Suite.objects.create(name="ci", path="/nonexistent")
    _, token = ApiToken.create_for(member, "ci")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    run_id = client.post(
        "/api/ingest/runs", {"suite": "ci"}, content_type="application/json"
    ).json()["id"]
    event = test_event("t.py::a", "failed", stdout="<b>out</b>", stderr="err", log="rec")
    # A CI job's larger caps: the server cuts again, keeping the head and the tail (where the
    # error is), and what a coloured terminal would have drawn is plain text.
    huge = test_event("t.py::b", "failed", stdout="HEAD" + "y" * 200_000 + "\x1b[31mTAIL\x1b[0m")
    response = client.post(
        f"/api/ingest/runs/{run_id}/events",
        {"events": [event, huge]},
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    a = TestResult.objects.get(run_id=run_id, nodeid="t.py::a")
    assert (a.stdout, a.stderr, a.log) == ("<b>out</b>", "err", "rec")
    kept = TestResult.objects.get(run_id=run_id, nodeid="t.py::b").stdout
    assert len(kept) < 40_000 and kept.startswith("HEAD") and kept.endswith("yTAIL")
    assert "bytes cut]" in kept


# The reporter's part, on its own.


def test_streams_keep_each_section_once_and_label_phases():
    sections = [
        ("Captured stdout setup", "s\n"),
        ("Captured stdout setup", "s\n"),  # a later phase's report repeats it
        ("Captured stdout call", "c\n"),
        ("Captured log call", "L\n"),
        ("Captured stderr teardown", ""),  # nothing printed: no stream
        ("Some plugin's section", "ignored"),
    ]
    assert streams_of(sections) == {"stdout": "--- setup ---\ns\n--- call ---\nc\n", "log": "L\n"}
    assert streams_of([("Captured stderr call", "e")]) == {"stderr": "e"}
    # What PostgreSQL would refuse (NUL) or UTF-8 cannot encode (a lone surrogate) is replaced.
    nul = streams_of([("Captured stdout call", "a\x00b\udc80c")])["stdout"]
    assert nul == "a\ufffdb?c"
    # Colours, cursor moves and terminal hyperlinks are the terminal's, not the text's.
    coloured = "\x1b[1;31mERROR\x1b[0m \x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\\x1b[2K!"
    assert streams_of([("Captured log call", coloured)]) == {"log": "ERROR link!"}


def test_cut_keeps_head_and_tail_in_whole_characters():
    assert cut("short", 10) == "short"
    text = "é" * 1000  # 2000 bytes
    kept = cut(text, 101)
    assert kept.startswith("é" * 25) and kept.endswith("é" * 25)
    assert "[… 1899 bytes cut]" in kept and "\ufffd" not in kept


def test_budget_per_test_per_run_and_passing():
    budget = OutputBudget(per_test=100, per_run=150, capture_passed=False)
    assert budget.keep("passed", [("Captured stdout call", "x")]) == {}
    first = budget.keep("failed", [("Captured stdout call", "a" * 500)])["stdout"]
    assert first.startswith("a" * 50) and "[… 400 bytes cut]" in first
    second = budget.keep("error", [("Captured stderr call", "b" * 500)])["stderr"]
    assert "[… 450 bytes cut]" in second and "output cap" in second
    # Spent: one line per later attempt, whatever it printed on how many streams.
    third = budget.keep("failed", [("Captured log call", "c" * 10), ("Captured stderr call", "e")])
    assert third == {"log": "[the run's output cap (PTD_MAX_OUTPUT_PER_RUN) is reached]\n"}
    assert OutputBudget(10, 10, capture_passed=True).keep("passed", [("Captured stdout call", "p")])


def test_passing_output_or_other_caps_keep_the_warm_interpreter():
    from runner import warm

    if not warm.supported():
        pytest.skip("no warm starts on this platform")
    argv, env = ["/usr/bin/python3", "-m", "pytest"], {"PATH": "/usr/bin"}
    asked = {**env, "PTD_CAPTURE_PASSED": "1", "PTD_MAX_OUTPUT_PER_TEST": "100"}
    assert warm.Zygotes._key(argv, "/s", asked) == warm.Zygotes._key(argv, "/s", env)


def test_the_ingestion_plugin_sends_what_tests_printed_within_the_ci_jobs_caps(tmp_path):
    """A real `pytest -n 2` with the ingestion plugin, its dashboard down: the spooled events
    (what `ptd upload` sends) carry the failing tests' output, cut to the job's caps."""
    from tests.servers import free_port
    from tests.test_ingest import pytest_run

    suite = write_suite(tmp_path / "ci", {"test_noisy.py": NOISY})
    spool = tmp_path / "spool.jsonl"
    caps = {"PTD_MAX_OUTPUT_PER_TEST": "300", "PTD_CAPTURE_PASSED": "1"}
    out = pytest_run(
        suite, "-n", "2", "--ptd-url", f"http://127.0.0.1:{free_port()}", "--ptd-token",
        "ptd_unused", "--ptd-suite", "ci", "--ptd-spool", str(spool), extra_env=caps,
    )  # fmt: skip
    assert out.returncode == 1 and "4 failed, 1 passed" in out.stdout, out.stdout + out.stderr
    events = [json.loads(line) for line in spool.read_text().splitlines()]
    tests = {e["nodeid"].split("::")[-1]: e for e in events if e.get("type") == "test"}
    assert tests["test_fails_noisily"]["stderr"] == "CALL-ERR\n"
    assert "CALL-LOG" in tests["test_fails_noisily"]["log"]
    assert tests["test_passes"]["stdout"] == "PASSING-OUT\n"
    big = tests["test_megabyte"]["stdout"]
    assert len(big.encode()) < 400 and "bytes cut]" in big
