"""Every URL of the URLconf, walked as anonymous, member, other member and staff (issue #12).

The expected statuses come from TABLE alone: a URL pattern the table does not name (a new
view, a new API operation) fails the test, so nobody adds an address without saying who may
use it. Pages are driven with a session, the API with each user's bearer token. Each request
runs in a savepoint rolled back after it, so one user's cancel or delete is not the next one's
starting point. The model itself is runs/permissions.py.
"""

from __future__ import annotations

import re

from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.test import Client
from django.urls import URLResolver, get_resolver

from runs.execution import launch
from runs.models import (
    RESERVED_SUITE_NAMES,
    Agent,
    ApiToken,
    Run,
    RunConfig,
    Shard,
    Suite,
    TestStat,
)
from tests.base import BaseTestCase
from tests.factories import DEMO_DIR, make_run

NODE = "test_api.py::test_health"
ROLES = ("anon", "member", "other", "staff")
LOGIN = 302  # a page's answer to outsiders: to the login page (checked below)


def everyone(status):
    return dict.fromkeys(ROLES[1:], status)


def members_staff(member, other, staff):
    return {"member": member, "other": other, "staff": staff}


VIEW = {"anon": LOGIN, **everyone(200)}
STAFF_PAGE = {"anon": LOGIN, **members_staff(403, 403, 200)}
API_READ = {"anon": 401, **everyone(200)}
AGENT_ONLY = {"anon": 401, **members_staff(403, 403, 200)}
# Django's admin keeps its own rule (is_staff, then model permissions): one row for all its
# addresses, ADMIN_STAFF / ADMIN_OUTSIDERS below, so a new model's pages are walked too.
ADMIN = "admin/"

# (route, URL name) -> (method, body, {role: status}). Bodies are form data for pages, JSON
# for the API. "member" launched the run under test (and owns the outside run and a token).
TABLE = {
    ("login/", "login"): ("get", None, everyone(200) | {"anon": 200}),
    ("logout/", "logout"): ("post", None, everyone(302) | {"anon": 302}),
    # API (token or session; JSON errors)
    ("api/", "api-root"): ("get", None, {"anon": 404, **everyone(404)}),
    ("api/openapi.json", "openapi-json"): ("get", None, API_READ),
    ("api/docs", "openapi-view"): ("get", None, {"anon": 302, **everyone(200)}),
    ("api/suites", "list_suites"): ("get", None, API_READ),
    ("api/suites", "create_suite"): (
        "post",
        {"name": "walked", "path": str(DEMO_DIR)},
        {"anon": 401, **members_staff(403, 403, 201)},
    ),
    ("api/runs", "list_runs"): ("get", None, API_READ),
    ("api/runs", "create_run"): ("post", {"suite": "demo"}, {"anon": 401, **everyone(201)}),
    ("api/runs/<run_id>", "run_detail"): ("get", None, API_READ),
    ("api/runs/<run_id>/results", "run_results"): ("get", None, API_READ),
    ("api/runs/<run_id>/junit.xml", "run_junit"): ("get", None, API_READ),
    ("api/runs/<run_id>/load/series", "run_load_series"): ("get", None, API_READ),
    ("api/runs/<run_id>/compare/<other_id>", "compare_runs"): ("get", None, API_READ),
    ("api/runs/<run_id>/cancel", "cancel_run"): (
        "post",
        {},
        {"anon": 401, **members_staff(200, 403, 200)},
    ),
    ("api/suites/<suite_id>/flaky", "suite_flaky"): ("get", None, API_READ),
    ("api/suites/<suite_id>/trends", "suite_trends"): ("get", None, API_READ),
    ("api/tests/<suite_id>/<path:nodeid>/history", "test_history"): ("get", None, API_READ),
    ("api/suites/<suite_id>/scaling", "suite_scaling_view"): ("get", None, API_READ),
    ("api/suites/<suite_id>/sweep", "start_sweep"): (
        "post",
        {"workers": [1, 2]},
        {"anon": 401, **everyone(201)},
    ),
    ("api/ingest/runs", "create_external_run"): (
        "post",
        {"suite": "demo"},
        {"anon": 401, **everyone(201)},
    ),
    ("api/ingest/runs/<run_id>/events", "ingest_events"): (
        "post",
        {"events": []},
        {"anon": 401, **members_staff(200, 403, 200)},
    ),
    ("api/ingest/runs/<run_id>/finish", "finish_external_run"): (
        "post",
        {"exitstatus": 0, "wall_seconds": 1.0},
        {"anon": 401, **members_staff(200, 403, 200)},
    ),
    # Pages (session; outsiders go to the login page)
    ("", "home"): ("get", None, VIEW),
    ("suites/", "suites"): ("get", None, VIEW),
    ("suites/new/", "suite_new"): ("get", None, STAFF_PAGE),
    ("suites/<str:name>/", "suite"): ("get", None, VIEW),
    ("suites/<str:name>/edit/", "suite_edit"): ("get", None, STAFF_PAGE),
    ("suites/<str:name>/configs/new/", "config_new"): ("get", None, STAFF_PAGE),
    ("suites/<str:name>/configs/<int:config_id>/", "config_edit"): ("get", None, STAFF_PAGE),
    ("suites/<str:name>/configs/<int:config_id>/delete/", "config_delete"): (
        "post",
        {},
        {"anon": LOGIN, **members_staff(403, 403, 302)},
    ),
    ("suites/<str:name>/flaky/", "flaky_list"): ("get", None, VIEW),
    ("suites/<str:name>/flaky/rebuild/", "flaky_rebuild"): (
        "post",
        {},
        {"anon": LOGIN, **members_staff(403, 403, 302)},
    ),
    ("suites/<str:name>/quarantine/", "quarantine_list"): ("get", None, VIEW),
    ("suites/<str:name>/quarantine/set/", "quarantine"): (
        "post",
        {"nodeid": NODE, "reason": "flaky"},
        {"anon": LOGIN, **members_staff(403, 403, 302)},
    ),
    ("suites/<str:name>/rerun/", "test_rerun"): (
        "post",
        {"nodeid": NODE, "times": "2"},
        {"anon": LOGIN, **everyone(302)},
    ),
    ("suites/<str:name>/tests/<path:nodeid>", "test_history"): ("get", None, VIEW),
    ("suites/<str:name>/report/", "report"): ("get", None, VIEW),
    ("suites/<str:name>/report/runs.csv", "report_runs_csv"): ("get", None, VIEW),
    ("suites/<str:name>/report/tests.csv", "report_tests_csv"): ("get", None, VIEW),
    ("suites/<str:name>/scaling/", "scaling"): ("get", None, VIEW),
    ("suites/<str:name>/sweep/", "sweep"): (
        "post",
        {"workers": "1, 2"},
        {"anon": LOGIN, **everyone(302)},
    ),
    ("suites/<str:name>/load/", "load_trend"): ("get", None, VIEW),
    ("suites/<str:name>/load/compare/", "load_compare"): ("get", None, VIEW),
    ("runs/<int:run_id>/load/stats.csv", "load_stats_csv"): ("get", None, VIEW),
    ("runs/<int:run_id>/load/series.csv", "load_series_csv"): ("get", None, VIEW),
    ("runs/<int:run_id>/load/report.html", "load_report"): ("get", None, VIEW),
    ("runs/", "runs"): ("get", None, VIEW),
    ("runs/rows/", "run_rows"): ("get", None, VIEW),
    ("runs/<int:run_id>/", "run"): ("get", None, VIEW),
    ("runs/<int:run_id>/cancel/", "run_cancel"): (
        "post",
        {},
        {"anon": LOGIN, **members_staff(302, 403, 302)},
    ),
    ("runs/<int:run_id>/log/", "run_log"): (
        "get",
        None,
        {"anon": LOGIN, **members_staff(200, 403, 200)},  # staff and the launcher
    ),
    # without ?with=N: back to the run page, saying why
    ("runs/<int:run_id>/compare/", "compare_pick"): ("get", None, {"anon": LOGIN, **everyone(302)}),
    ("runs/<int:run_id>/compare/<int:other_id>/", "compare"): ("get", None, VIEW),
    ("tokens/", "tokens"): ("get", None, VIEW),
    ("tokens/<int:token_id>/revoke/", "token_revoke"): (
        "post",
        {},
        {"anon": LOGIN, **members_staff(302, 404, 404)},
    ),
    ("trends/", "trends"): ("get", None, VIEW),
    ("agents/", "agents"): ("get", None, VIEW),
    # Agents (runs across machines): staff tokens only
    ("api/agents/heartbeat", "heartbeat"): ("post", {"name": "walker"}, AGENT_ONLY),
    ("api/agents", "agent_list"): ("get", None, API_READ),
    ("api/shards/<shard_id>/start", "shard_start"): ("post", {}, AGENT_ONLY),
    ("api/shards/<shard_id>/heartbeat", "shard_heartbeat"): ("post", {}, AGENT_ONLY),
    ("api/shards/<shard_id>/collection", "shard_collection"): (
        "post",
        {"nodeids": [NODE]},
        AGENT_ONLY,
    ),
    ("api/shards/<shard_id>/units", "shard_units"): ("post", {"worker": "gw0"}, AGENT_ONLY),
    ("api/shards/<shard_id>/events", "shard_events"): (
        "post",
        {"first_seq": 0, "events": []},
        AGENT_ONLY,
    ),
    ("api/shards/<shard_id>/finish", "shard_finish"): ("post", {"exitstatus": 0}, AGENT_ONLY),
    ("trends/<str:name>/data/", "trends_data"): ("get", None, VIEW),
}
# The admin's own rule: outsiders and members are sent to its login page; staff without
# model permissions see its index and their password page, and a 403 for the models.
ADMIN_STAFF = {
    "admin/": 200,
    "admin/login/": 302,
    "admin/logout/": 405,
    "admin/password_change/": 200,
    "admin/password_change/done/": 200,
    "admin/jsi18n/": 200,
    "admin/r/<path:content_type_id>/<path:object_id>/": 302,
    "admin/^(?P<app_label>auth|runs)/$": 404,  # an app none of whose models they may see
    "admin/(?P<url>.*)$": 404,
}
ADMIN_OUTSIDERS = {"admin/login/": 200}


def url_patterns(resolver=None, prefix=""):
    """(route, name, pattern) of every URL the URLconf serves, nested ones included."""
    for pattern in (resolver or get_resolver()).url_patterns:
        if isinstance(pattern, URLResolver):
            yield from url_patterns(pattern, prefix + str(pattern.pattern))
        else:
            yield prefix + str(pattern.pattern), pattern.name, pattern


def admin_object_id(route: str):
    """An object of the model an admin address is about (a Suite for the others)."""
    parts = route.split("/")
    model = Suite
    if route.startswith(ADMIN) and len(parts) > 3 and parts[1] in ("auth", "runs"):
        model = apps.get_model(parts[1], parts[2])
    return model.objects.order_by("pk").values_list("pk", flat=True).first()


def expected_admin(route: str, role: str) -> int:
    if role == "staff":
        if route.endswith("<path:object_id>/") and "/r/" not in route:
            return 302  # the admin's old address of an object: to its change page
        return ADMIN_STAFF.get(route, 403)
    return ADMIN_OUTSIDERS.get(route, 302)


class UrlWalkTests(BaseTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        cls.other = get_user_model().objects.create_user("carol", password="pw-carol-1234")
        cls.users = {"member": cls.member, "other": cls.other, "staff": cls.staff}
        cls.tokens = {role: ApiToken.create_for(user, role)[1] for role, user in cls.users.items()}
        cls.own_token = ApiToken.objects.get(user=cls.member)
        cls.own_run = make_run(
            cls.suite,
            status=Run.Status.RUNNING,
            user=cls.member,
            config=cls.config,
            results=[(NODE, "gw0", "failed", 0.1), (NODE, "gw1", "passed", 0.1)],
        )
        cls.outside = Run.objects.create(
            suite=cls.suite,
            status=Run.Status.RUNNING,
            trigger=Run.Trigger.EXTERNAL,
            user=cls.member,
            config_snapshot={"engine": "external", "workers": 1},
        )
        cls.load_run = make_run(cls.suite, user=cls.member, config=cls.config)
        cls.load_run.config_snapshot.update(mode="load", users=2, duration=5)
        cls.load_run.save()
        TestStat.objects.create(suite=cls.suite, nodeid=NODE, runs_seen=1, flip_count=1)
        cls.extra_config = RunConfig.objects.create(suite=cls.suite, name="extra", workers=1)
        Group.objects.create(name="testers")  # an object for each admin page
        agent = Agent.objects.create(name="walker", ptd_version="0")
        cls.shard = Shard.objects.create(run=cls.own_run, agent=agent, number=0, task_id="t")

    def setUp(self):
        log = launch.log_path(self.own_run)
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("the run's output\n")
        self.client.raise_request_exception = False

    def values(self, route: str) -> dict:
        run = self.outside if route.startswith("api/ingest/runs/") else self.own_run
        if "load/" in route:  # a load run's addresses
            run = self.load_run
        return {
            "name": self.suite.name,
            "suite_id": self.suite.pk,
            "config_id": self.extra_config.pk,
            "run_id": run.pk,
            "other_id": self.outside.pk,  # compared with the outside run
            "token_id": self.own_token.pk,
            "shard_id": self.shard.pk,
            "nodeid": NODE,
            "content_type_id": ContentType.objects.get_for_model(Suite).pk,
            "object_id": admin_object_id(route),
            "id": self.member.pk,
            "app_label": "runs",
            "url": "no/such/page/",
        }

    def request(self, role: str, route: str, method: str, body):
        values = self.values(route)
        fill = lambda m: str(values[m.group(1) or m.group(2)])  # noqa: E731
        url = "/" + re.sub(r"<(?:\w+:)?(\w+)>|\(\?P<(\w+)>[^)]*\)", fill, route)
        url = url.replace("^", "").replace("$", "")
        if route.endswith("load/compare/"):
            url += f"?a={self.load_run.pk}&b={self.load_run.pk}"
        client = Client()
        client.raise_request_exception = False
        kwargs = {}
        if route.startswith("api/"):
            if role != "anon":
                kwargs["HTTP_AUTHORIZATION"] = f"Bearer {self.tokens[role]}"
            if method == "post":
                kwargs.update(data=body, content_type="application/json")
        else:
            if role != "anon":
                client.force_login(self.users[role])
            if method == "post":
                kwargs["data"] = body
        with transaction.atomic():
            response = getattr(client, method)(url, **kwargs)
            transaction.set_rollback(True)
        return url, response

    def test_every_url_answers_each_kind_of_user_as_the_table_says(self):
        patterns = list(url_patterns())
        missing = [
            (route, name)
            for route, name, _ in patterns
            if not route.startswith(ADMIN) and (route, name) not in TABLE
        ]
        assert not missing, f"URL patterns with no row in TABLE (say who may use them): {missing}"
        stale = set(TABLE) - {(route, name) for route, name, _ in patterns}
        assert not stale, f"rows of TABLE that no URL pattern has any more: {stale}"
        checked = 0
        for route, name, _ in patterns:
            method, body, statuses = TABLE.get((route, name), ("get", None, None))
            for role in ROLES:
                expected = expected_admin(route, role) if statuses is None else statuses[role]
                url, response = self.request(role, route, method, body)
                with self.subTest(role=role, method=method, url=url):
                    assert response.status_code == expected, (
                        f"{role} {method.upper()} {url}: {response.status_code}, "
                        f"expected {expected}"
                    )
                    page = not route.startswith("api/") and "logout/" not in route
                    if role == "anon" and expected == 302 and page:
                        location = response["Location"]
                        assert location.startswith(("/login/", "/admin/login/")), location
                    if route.startswith("api/") and response.status_code >= 400:
                        assert "detail" in response.json()
                checked += 1
        assert checked == len(patterns) * len(ROLES)

    def test_no_suite_name_can_shadow_a_route_word(self):
        """Every literal word after /suites/ is reserved (a suite named so is unreachable)."""
        words = {
            route.split("/")[1]
            for route, _, _ in url_patterns()
            if route.startswith("suites/") and route.count("/") >= 2
        }
        words = {w for w in words if w and not w.startswith("<")}
        assert words and words <= RESERVED_SUITE_NAMES
