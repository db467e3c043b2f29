import pytest
from django.urls import reverse

from runs.models import Suite
from tests.base import BaseTestCase
from tests.factories import make_run

PAGES = [
    ("home", {}),
    ("suites", {}),
    ("suite_new", {}),
    ("suite", {"name": "demo"}),
    ("suite_edit", {"name": "demo"}),
    ("runs", {}),
    ("trends", {}),
]


class LoginRequiredTests(BaseTestCase):
    def test_every_page_redirects_outsiders_to_login(self):
        run = make_run(self.suite)
        urls = [reverse(name, kwargs=kw) for name, kw in PAGES]
        urls += [reverse("run", args=[run.id])]
        for url in urls:
            with self.subTest(url=url):
                response = self.client.get(url)
                assert response.status_code == 302
                assert response["Location"].startswith(reverse("login"))

    def test_cancel_needs_login(self):
        run = make_run(self.suite)
        response = self.client.post(reverse("run_cancel", args=[run.id]))
        assert response.status_code == 302 and reverse("login") in response["Location"]

    def test_login_page_is_public(self):
        assert self.client.get(reverse("login")).status_code == 200


class PagesTests(BaseTestCase):
    def test_home_lists_suites_with_latest_run(self):
        run = make_run(self.suite)
        self.login_member()
        response = self.client.get(reverse("home"))
        assert response.status_code == 200
        self.assertContains(response, "demo")
        self.assertContains(response, f"#{run.id}")

    def test_runs_list_filters_by_status(self):
        passed = make_run(self.suite)
        failed = make_run(self.suite, status="failed")
        self.login_member()
        response = self.client.get(reverse("runs"), {"status": "failed"})
        ids = [r.id for r in response.context["page"].object_list]
        assert ids == [failed.id] and passed.id not in ids

    def test_runs_list_shows_whole_runs_figures_and_what_a_cut_run_left_out(self):
        whole = make_run(self.suite, speedup=3.25, efficiency=0.81, collected=2, tests_total=2)
        cut = make_run(
            self.suite, status="cancelled", speedup=1.75, efficiency=0.88, collected=225,
            tests_total=12,
        )  # fmt: skip
        self.login_member()
        page = self.client.get(reverse("runs")).content.decode()
        row = {r.id: page.split(f">#{r.id}<")[1].split("</tr>")[0] for r in (whole, cut)}
        assert "3.25×" in row[whole.id] and "0.81" in row[whole.id]
        assert "not run" not in row[whole.id]
        assert "(213 not run)" in row[cut.id]
        assert "1.75" not in row[cut.id] and "0.88" not in row[cut.id]

    def test_rows_fragment_for_refreshing_lists_keeps_flash_messages(self):
        passed = make_run(self.suite)
        failed = make_run(self.suite, status="failed")
        self.client.logout()
        assert self.client.get(reverse("run_rows")).status_code == 302  # login first
        self.login_member()
        listing = self.client.get(reverse("runs"), {"status": "failed"})
        assert 'data-refresh="/runs/rows/?status=failed&amp;page=1"' in listing.content.decode()
        rows = self.client.get(reverse("run_rows"), {"status": "failed", "page": "1"})
        text = rows.content.decode()
        assert f">#{failed.id}<" in text and f">#{passed.id}<" not in text
        assert "<html" not in text  # a fragment: the table only
        latest = self.client.get(reverse("run_rows"), {"limit": "1"}).content.decode()
        assert f">#{failed.id}<" in latest and f">#{passed.id}<" not in latest
        # A message waiting for the next page is not eaten by a poll in another tab.
        self.client.post(reverse("test_rerun", args=["demo"]), {"nodeid": "--co", "times": "2"})
        self.client.get(reverse("run_rows"), {"limit": "5"})
        self.assertContains(self.client.get(reverse("home")), "Not a test id of demo")

    def test_a_post_only_address_opened_in_the_browser_explains_itself(self):
        run = make_run(self.suite, status="running")
        self.login_member()
        response = self.client.get(reverse("run_cancel", args=[run.id]))
        self.assertContains(response, "use the button on the page", status_code=405)
        self.assertEqual(response["Allow"], "POST")
        run.refresh_from_db()
        assert run.status == "running"

    def test_run_page_escapes_messages(self):
        run = make_run(self.suite, message="<script>alert(1)</script>")
        self.login_member()
        response = self.client.get(reverse("run", args=[run.id]))
        self.assertContains(response, "&lt;script&gt;alert(1)&lt;/script&gt;")
        self.assertNotContains(response, "<script>alert(1)</script>")


class SuiteEditingTests(BaseTestCase):
    def form_data(self, **overrides):
        data = {
            "suite-name": "api-checks",
            "suite-path": self.suite.path,
            "suite-python": "",
            "suite-pytest_args": '["-x"]',
            "suite-env": '{"API_URL": "http://127.0.0.1:1"}',
            "suite-description": "",
            "config-workers": "8",
            "config-engine": "xdist",
            "config-dist": "loadscope",
            "config-repeat": "1",
            "config-reruns": "0",
            "config-timeout": "",
            "config-keyword": "",
            "config-markers": "",
        }
        data.update(overrides)
        return data

    def test_member_cannot_create_or_edit_suites(self):
        self.login_member()
        for url in (reverse("suite_new"), reverse("suite_edit", args=["demo"])):
            assert self.client.get(url).status_code == 403
            assert self.client.post(url, self.form_data()).status_code == 403
        assert not Suite.objects.filter(name="api-checks").exists()

    def test_staff_creates_a_suite_with_its_default_config(self):
        self.login_staff()
        response = self.client.post(reverse("suite_new"), self.form_data())
        assert response.status_code == 302
        suite = Suite.objects.get(name="api-checks")
        assert suite.pytest_args == ["-x"] and suite.env == {"API_URL": "http://127.0.0.1:1"}
        config = suite.default_config()
        assert (config.workers, config.dist) == (8, "loadscope")

    def test_staff_gets_form_errors_for_bad_input(self):
        self.login_staff()
        response = self.client.post(
            reverse("suite_new"),
            self.form_data(**{"suite-path": "/no/such/dir", "suite-env": "[1"}),
        )
        assert response.status_code == 400
        form = response.context["form"]
        assert "path" in form.errors and "env" in form.errors
        assert not Suite.objects.filter(name="api-checks").exists()

    def test_a_rename_refused_leaves_the_page_about_the_suite_as_saved(self):
        Suite.objects.create(name="other", path=str(self.suite.path))
        self.login_staff()
        data = {**self.form_data(), "suite-name": "other", "suite-path": str(self.suite.path)}
        response = self.client.post(reverse("suite_edit", args=["demo"]), data)
        self.assertContains(response, "already exists", status_code=400)
        self.assertContains(response, "<h1>Edit demo</h1>", status_code=400)
        self.assertContains(response, 'href="/suites/demo/">Cancel', status_code=400)

    def test_the_default_configuration_is_checked_as_a_launch_would_check_it(self):
        """A -k that is no pytest expression was saved, and every launch was refused."""
        self.login_staff()
        response = self.client.post(
            reverse("suite_new"), self.form_data(**{"config-keyword": "not (a"})
        )
        self.assertContains(response, "not a pytest expression", status_code=400)
        assert not Suite.objects.filter(name="api-checks").exists()


@pytest.mark.django_db
def test_plotly_js_is_served_locally(client):
    from django.contrib.staticfiles import finders

    assert finders.find("plotly/plotly.min.js")
