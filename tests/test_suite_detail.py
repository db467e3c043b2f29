"""The suite page's launch form: overrides, validation errors on the form, the redirect."""

from django.urls import reverse

from runs.models import ApiToken, Run, RunConfig
from tests.base import BaseTestCase


class LaunchFormTests(BaseTestCase):
    def post(self, **data):
        self.login_member()
        return self.client.post(reverse("suite", args=["demo"]), {"config": self.config.pk, **data})

    def test_launch_queues_a_run_and_redirects_to_it(self):
        response = self.post(workers="3", dist="loadscope", keyword="health")
        run = Run.objects.get()
        assert response.status_code == 302 and response["Location"] == f"/runs/{run.id}/"
        assert run.status == "queued" and run.trigger == "ui" and run.user == self.member
        snap = run.config_snapshot
        assert (snap["workers"], snap["dist"], snap["keyword"]) == (3, "loadscope", "health")
        assert run.workers == 3

    def test_bad_overrides_are_form_errors_and_launch_nothing(self):
        for data, field in [
            ({"workers": "0"}, "workers"),
            ({"workers": "lots"}, "workers"),
            ({"workers": "100000"}, "workers"),  # refused, not cut to "1000"
            ({"repeat": "0"}, "repeat"),
            ({"dist": "random"}, "dist"),
        ]:
            with self.subTest(data=data):
                response = self.post(**data)
                assert response.status_code == 400
                assert field in response.context["form"].errors
        assert not Run.objects.exists()

    def test_workers_auto(self):
        self.post(workers="auto")
        assert Run.objects.get().config_snapshot["workers"] == 0  # one per core, like -n auto

    def test_page_shows_the_form_and_configurations(self):
        self.login_member()
        response = self.client.get(reverse("suite", args=["demo"]))
        self.assertContains(response, 'id="run-button"')
        self.assertContains(response, "default")


class DefaultConfigurationTests(BaseTestCase):
    def test_pages_read_a_suite_without_configurations_and_write_nothing(self):
        self.config.delete()
        self.login_staff()
        for url in (reverse("suite", args=["demo"]), reverse("suite_edit", args=["demo"])):
            assert self.client.get(url).status_code == 200
        assert not RunConfig.objects.exists()

    def test_the_first_launch_saves_the_default_configuration(self):
        self.config.delete()
        _, raw = ApiToken.create_for(self.member)
        response = self.client.post(
            "/api/runs",
            {"suite": "demo"},
            content_type="application/json",
            headers={"authorization": f"Bearer {raw}"},
        )
        run = Run.objects.get()
        assert response.status_code == 201 and run.config.is_default
        assert list(RunConfig.objects.values_list("name", flat=True)) == ["default"]
