"""Issue #12 items 4, 6, 7 and 9, through real HTTP requests as members, other members, staff."""

from __future__ import annotations

import importlib
import tempfile
from io import StringIO
from pathlib import Path

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

import runs.migrations
from runs.models import ApiToken, Run, Suite, TestStat
from tests.base import BaseTestCase
from tests.factories import DEMO_DIR, make_run, write_suite

NODE = "test_api.py::test_health"


class PermissionTestCase(BaseTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        cls.other = get_user_model().objects.create_user("carol", password="pw-carol-1234")
        _, cls.member_token = ApiToken.create_for(cls.member, "ci")
        _, cls.other_token = ApiToken.create_for(cls.other, "ci")
        _, cls.staff_token = ApiToken.create_for(cls.staff, "ci")

    def api(self, token):
        return Client(HTTP_AUTHORIZATION=f"Bearer {token}")


class CancelTests(PermissionTestCase):
    """Item 4: only the run's launcher (a token's owner) and staff cancel it."""

    def queued(self, user=None) -> Run:
        return Run.objects.create(suite=self.suite, config_snapshot={}, user=user or self.member)

    def test_api_refuses_another_members_run_with_a_json_403(self):
        run = self.queued()
        response = self.api(self.other_token).post(f"/api/runs/{run.id}/cancel")
        assert response.status_code == 403 and "not yours" in response.json()["detail"]
        run.refresh_from_db()
        assert run.status == Run.Status.QUEUED

    def test_the_launcher_and_staff_cancel_through_the_api(self):
        for token in (self.member_token, self.staff_token):
            run = self.queued()
            response = self.api(token).post(f"/api/runs/{run.id}/cancel")
            assert response.status_code == 200 and response.json()["status"] == "cancelled"

    def test_a_run_launched_with_a_token_is_its_owners_in_the_browser_too(self):
        created = self.api(self.member_token).post(
            "/api/runs", {"suite": "demo"}, content_type="application/json"
        )
        assert created.status_code == 201
        run_id = created.json()["id"]
        self.client.force_login(self.other)
        assert self.client.post(f"/runs/{run_id}/cancel/").status_code == 403
        self.login_member()
        assert self.client.post(f"/runs/{run_id}/cancel/").status_code == 302
        assert Run.objects.get(pk=run_id).status == Run.Status.CANCELLED

    def test_the_cancel_page_refuses_another_member_and_says_why(self):
        run = self.queued()
        self.client.force_login(self.other)
        response = self.client.post(f"/runs/{run.id}/cancel/")
        self.assertContains(response, "only the runs you launched", status_code=403)
        run.refresh_from_db()
        assert run.status == Run.Status.QUEUED

    def test_the_cancel_button_shows_only_to_who_may_use_it(self):
        run = self.queued()
        for user, shown in ((self.member, True), (self.other, False), (self.staff, True)):
            self.client.force_login(user)
            page = self.client.get(f"/runs/{run.id}/").content.decode()
            with self.subTest(user=user.username):
                assert ('id="cancel-form"' in page) is shown
                assert ('id="log-link"' in page) is shown  # the run's log: staff and its launcher


class TokenPageTests(PermissionTestCase):
    """Item 6: a new token is shown in the POST's own answer and stored nowhere in clear."""

    def test_the_new_token_is_in_the_answer_and_in_no_session_row(self):
        self.login_member()
        response = self.client.post("/tokens/", {"name": "gitlab"})
        assert response.status_code == 200 and response["Cache-Control"] == "no-store"
        raw = response.context["new_token"]
        assert ApiToken.objects.authenticate(raw).user == self.member
        self.assertContains(response, raw)
        sessions = list(Session.objects.all())
        assert sessions
        for session in sessions:
            assert raw not in repr(session.get_decoded())
            assert raw not in session.session_data
        assert raw.encode() not in self.client.get("/tokens/").content


class SuiteNameTests(PermissionTestCase):
    """Item 7: no suite name shadows a route (/suites/new/) or an id (the API's "42")."""

    def test_forms_refuse_route_words_and_numbers(self):
        self.login_staff()
        for name in ("new", "NEW", "42"):
            response = self.client.post(
                "/suites/new/",
                {
                    "suite-name": name,
                    "suite-path": str(DEMO_DIR),
                    "suite-pytest_args": "[]",
                    "suite-env": "{}",
                    "config-workers": "1",
                    "config-engine": "fork",
                    "config-dist": "load",
                    "config-repeat": "1",
                    "config-reruns": "0",
                },
            )
            with self.subTest(name=name):
                assert response.status_code == 400
                assert "name" in response.context["form"].errors
        assert list(Suite.objects.values_list("name", flat=True)) == ["demo"]

    def test_the_api_refuses_them(self):
        for name in ("new", "42"):
            response = self.api(self.staff_token).post(
                "/api/suites",
                {"name": name, "path": str(DEMO_DIR)},
                content_type="application/json",
            )
            assert response.status_code == 400 and "name" in response.json()["detail"]

    def test_run_suite_refuses_to_register_such_a_directory(self):
        for name in ("new", "42"):
            with tempfile.TemporaryDirectory() as tmp:
                path = write_suite(Path(tmp) / name, {"test_a.py": "def test_a(): pass\n"})
                with pytest.raises(CommandError) as info:
                    call_command("run_suite", str(path), stdout=StringIO(), stderr=StringIO())
            assert info.value.returncode == 2 and "cannot register" in str(info.value)
        assert not Suite.objects.exclude(name="demo").exists()

    def test_digits_are_ids_and_names_are_names(self):
        other = Suite.objects.create(name="api-checks", path=str(DEMO_DIR))
        client = self.api(self.member_token)
        for ref, expected in ((other.pk, other), (str(other.pk), other), ("api-checks", other)):
            response = client.post("/api/runs", {"suite": ref}, content_type="application/json")
            assert response.status_code == 201
            assert Run.objects.get(pk=response.json()["id"]).suite == expected
        for ref in ("999999", 0, "new"):
            response = client.post(
                "/api/ingest/runs", {"suite": ref}, content_type="application/json"
            )
            assert response.status_code == 404, ref


class RerunSourceTests(PermissionTestCase):
    """Item 9 and "members rerun their own runs": which configuration a rerun repeats."""

    def setUp(self):
        TestStat.objects.create(suite=self.suite, nodeid=NODE, runs_seen=1, flip_count=1)
        make_run(self.suite, results=[(NODE, "gw0", "failed", 0.1)])  # the server ran it
        self.config.workers = 2
        self.config.save()

    def rerun(self, user, source) -> Run:
        self.client.force_login(user)
        response = self.client.post(
            "/suites/demo/rerun/", {"nodeid": NODE, "times": "3", "run": source.id}
        )
        assert response.status_code == 302
        run = Run.objects.exclude(pk=source.pk).order_by("-id").first()
        assert run is not None and response["Location"] == run.get_absolute_url(), list(
            self.client.session.get("_messages", "")
        )
        return run

    def test_a_test_last_seen_in_an_outside_run_reruns_on_the_default_configuration(self):
        outside = Run.objects.create(
            suite=self.suite,
            status=Run.Status.FAILED,
            trigger=Run.Trigger.EXTERNAL,
            user=self.member,
            config_snapshot={"engine": "external", "dist": "", "workers": 7, "repeat": 1},
        )
        run = self.rerun(self.member, outside)
        snap = run.config_snapshot
        assert (snap["engine"], snap["workers"], snap["repeat"]) == ("fork", 2, 3)
        assert snap["rerun_of"] == NODE and run.config == self.config

    def test_own_runs_repeat_their_configuration_others_the_default_one(self):
        source = make_run(self.suite, workers=5, user=self.member, config=self.config)
        assert self.rerun(self.member, source).config_snapshot["workers"] == 5
        assert self.rerun(self.staff, source).config_snapshot["workers"] == 5
        assert self.rerun(self.other, source).config_snapshot["workers"] == 2


class ShadowedSuitesMigrationTests(PermissionTestCase):
    def test_suites_named_like_a_route_or_an_id_are_renamed(self):
        folder = Path(runs.migrations.__path__[0])
        module = next(folder.glob("*_suite_names_and_log_cut.py")).stem
        migration = importlib.import_module(f"runs.migrations.{module}")
        for name in ("new", "42", "suite-42"):
            Suite.objects.create(name=name, path=str(DEMO_DIR))  # as main allowed them
        migration.rename_shadowing_suites(apps, None)
        names = sorted(Suite.objects.values_list("name", flat=True))
        assert names == ["demo", "suite-42", "suite-42-2", "suite-new"]
