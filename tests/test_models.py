import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError

from runs.execution.store import (
    RESULT_COLUMNS,
    WorkerDelta,
    add_counts,
    add_to_workers,
    insert_results,
    result_from_event,
)
from runs.models import ApiToken, RunConfig, Suite, TestResult, WorkerStat
from tests.base import BaseTestCase
from tests.factories import SUMMARY_KEYS, make_run, test_event


class SuiteModelTests(BaseTestCase):
    def test_to_dict_hides_env_values(self):
        self.suite.env = {"API_TOKEN": "s3cret"}
        data = self.suite.to_dict()
        assert data["name"] == "demo"
        assert data["env"] == ["API_TOKEN"]
        assert "s3cret" not in str(data)

    def test_clean_rejects_relative_and_missing_paths(self):
        with pytest.raises(ValidationError) as err:
            Suite(name="x", path="relative/dir").full_clean()
        assert "absolute" in str(err.value)
        with pytest.raises(ValidationError) as err:
            Suite(name="x", path="/no/such/dir").full_clean()
        assert "not a directory" in str(err.value)

    def test_clean_rejects_bad_env_and_args(self):
        suite = Suite(name="x", path=self.suite.path, env={"1BAD": "v"}, pytest_args=[1])
        with pytest.raises(ValidationError) as err:
            suite.full_clean()
        assert set(err.value.message_dict) == {"env", "pytest_args"}

    def test_name_must_be_slug_like(self):
        with pytest.raises(ValidationError):
            Suite(name="../etc", path=self.suite.path).full_clean()

    def test_config_names_unique_per_suite(self):
        with pytest.raises(IntegrityError):
            RunConfig.objects.create(suite=self.suite, name="default")

    def test_default_config_created_when_missing(self):
        suite = Suite.objects.create(name="other", path=self.suite.path)
        config = suite.default_config()
        assert config.is_default and config.suite == suite
        assert config.to_dict()["workers"] == 4


class RunModelTests(BaseTestCase):
    def test_summary_has_the_contract_keys(self):
        run = make_run(self.suite, results=[("t.py::a", "gw0", "passed", 1.0)])
        summary = run.summary()
        assert set(summary) == SUMMARY_KEYS
        assert set(summary["tests"]) == {"total", "passed", "failed", "skipped", "errors", "flaky"}
        assert summary["per_worker"] == [{"id": "gw0", "tests": 1, "busy_seconds": 1.0}]

    def test_ci_exit_codes(self):
        run = make_run(self.suite)
        for status, code in [("passed", 0), ("failed", 1), ("error", 3), ("cancelled", 3)]:
            run.status = status
            assert run.ci_exit_code == code
        run.status, run.exit_code = "error", 4  # pytest refused its arguments: bad usage
        assert run.ci_exit_code == 2

    def test_worker_stat_unique_per_run(self):
        run = make_run(self.suite, results=[("t.py::a", "gw0", "passed", 1.0)])
        with pytest.raises(IntegrityError):
            WorkerStat.objects.create(run=run, worker="gw0")


class ApiTokenTests(BaseTestCase):
    def test_token_is_stored_hashed_and_authenticates(self):
        token, raw = ApiToken.create_for(self.member, "ci")
        assert raw.startswith("ptd_") and raw not in token.hashed
        assert token.prefix == raw[:12]
        assert ApiToken.objects.authenticate(raw) == token
        assert ApiToken.objects.authenticate(raw + "x") is None
        assert ApiToken.objects.authenticate("") is None
        assert "hashed" not in token.to_dict()

    def test_inactive_user_token_is_refused(self):
        _, raw = ApiToken.create_for(self.member)
        self.member.is_active = False
        self.member.save()
        assert ApiToken.objects.authenticate(raw) is None


class ResultInsertTests(BaseTestCase):
    def test_results_are_plain_columns_written_as_they_are(self):
        # insert_results bypasses the fields' value preparation: only plain types may appear.
        plain = {"CharField", "TextField", "FloatField", "PositiveSmallIntegerField", "ForeignKey"}
        assert {f.get_internal_type() for f in RESULT_COLUMNS} <= plain
        run = make_run(self.suite)
        events = [
            test_event("t.py::a", start=1000.0),
            test_event("t.py::b", "failed", worker="gw1"),
        ]
        insert_results([result_from_event(run.id, e) for e in events])
        stored = {r.nodeid: r for r in TestResult.objects.filter(run=run)}
        assert stored["t.py::b"].outcome == "failed" and stored["t.py::b"].worker == "gw1"
        assert stored["t.py::a"].stop == 1000.5 and stored["t.py::b"].longrepr == "E   assert 0"

    def test_worker_figures_add_up_and_keep_the_widest_span(self):
        """store.add_to_workers: counts add, the span keeps its earliest start and latest
        stop, and a batch with no times (a crash report) leaves the span as it is."""
        run = make_run(self.suite)
        batches = [
            {"gw0": WorkerDelta(1, 0.5, 5.0, 6.0, 0, "t.py::a"), "gw1": WorkerDelta()},
            {"gw0": WorkerDelta(1, 0.0, None, None, 1, "t.py::b")},
            {"gw0": WorkerDelta(2, 1.0, 4.0, 7.0, 0, "t.py::c")},
        ]
        for deltas in batches:
            add_to_workers(run.id, deltas, read_back=False)
        gw0 = WorkerStat.objects.get(run=run, worker="gw0")
        assert (gw0.tests, gw0.busy_seconds, gw0.crashed) == (4, 1.5, 1)
        assert (gw0.first_start, gw0.last_stop, gw0.current_test) == (4.0, 7.0, "t.py::c")
        gw1 = WorkerStat.objects.get(run=run, worker="gw1")  # announced, nothing run yet
        assert (gw1.tests, gw1.first_start, gw1.last_stop) == (0, None, None)
        add_counts(run.id, {"total": 3, "passed": 2, "failed": 1, "errors": 0})
        run.refresh_from_db()
        assert (run.tests_total, run.tests_passed, run.tests_failed) == (3, 2, 1)
