"""Launching a load run: thresholds and load options checked in one place, refused clearly
(API 400 JSON, form error, exit 2), stored in the run's snapshot, never in pytest's argv."""

from __future__ import annotations

from runs.execution import launch
from runs.models import ApiToken, Run, RunConfig
from tests.base import BaseTestCase


class LoadLaunchTests(BaseTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        _, cls.token = ApiToken.create_for(cls.member, "ci")

    def post(self, **body):
        return self.client.post(
            "/api/runs",
            {"suite": "demo", **body},
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {self.token}",
        )

    def test_api_refuses_a_bad_threshold_with_a_json_400(self):
        response = self.post(thresholds=["p95<300ms", "p97<1s"])
        assert response.status_code == 400
        assert response.json()["detail"].startswith("thresholds: 'p97<1s' is not a threshold")
        assert self.post(thresholds="p95<1s").status_code == 422  # a list, not a string
        assert not Run.objects.exists()

    def test_thresholds_without_load_mode_are_refused(self):
        response = self.post(thresholds=["p95<300ms"])
        assert response.status_code == 400
        assert response.json()["detail"] == (
            "thresholds: thresholds apply to load runs: add mode load (--load)"
        )

    def test_thresholds_are_kept_normalised_and_stay_out_of_argv(self):
        response = self.post(
            mode="load",
            duration=5,
            users=2,
            thresholds=["p95 < 300ms", "GET /items/{id}:  errors<1%  abort"],
        )
        assert response.status_code == 201, response.json()
        run = Run.objects.get()
        assert run.config_snapshot["thresholds"] == [
            "p95 < 300ms",
            "GET /items/{id}: errors<1% abort",
        ]
        spec = launch.build_spec(run)
        assert not any("p95" in arg or "errors" in arg for arg in spec.argv)

    def test_the_launch_form_says_what_is_wrong_with_a_threshold(self):
        self.login_member()
        response = self.client.post(
            "/suites/demo/", {"config": self.config.pk, "thresholds": "p95<300ms\nrps>2ms"}
        )
        self.assertContains(response, "rps is a number per second", status_code=400)
        assert not Run.objects.exists()

    def test_a_configuration_keeps_load_options_and_thresholds(self):
        self.login_staff()
        response = self.client.post(
            "/suites/demo/configs/new/",
            {
                "name": "soak",
                "workers": "2",
                "engine": "fork",
                "dist": "load",
                "repeat": "1",
                "reruns": "0",
                "mode": "load",
                "users": "50",
                "spawn_rate": "5",
                "duration": "60",
                "think_time": "0.5",
                "thresholds": "p95<300ms\n\nerrors<1% abort",
            },
        )
        self.assertRedirects(response, "/suites/demo/")
        soak = RunConfig.objects.get(name="soak")
        assert (soak.mode, soak.users, soak.duration, soak.think_time) == ("load", 50, 60, 0.5)
        assert soak.thresholds == ["p95<300ms", "errors<1% abort"]
        assert soak.to_dict()["thresholds"] == ["p95<300ms", "errors<1% abort"]
        page = self.client.get(f"/suites/demo/configs/{soak.pk}/").content.decode()
        assert "p95&lt;300ms\nerrors&lt;1% abort" in page
        # A load configuration needs a stop: a duration or iterations.
        response = self.client.post(
            "/suites/demo/configs/new/",
            {
                "name": "endless",
                "workers": "2",
                "engine": "fork",
                "dist": "load",
                "repeat": "1",
                "reruns": "0",
                "mode": "load",
                "users": "5",
            },
        )
        self.assertContains(response, "stops after a duration or a number", status_code=400)
        response = self.client.post(
            "/suites/demo/configs/new/",
            {
                "name": "bad",
                "workers": "2",
                "engine": "fork",
                "dist": "load",
                "repeat": "1",
                "reruns": "0",
                "thresholds": "p95<<3",
            },
        )
        self.assertContains(response, "is not a threshold", status_code=400)

    def test_the_last_gate_refuses_a_bad_threshold_in_a_stored_configuration(self):
        RunConfig.objects.filter(pk=self.config.pk).update(
            mode="load", duration=5, thresholds=["p95<1s", "nonsense"]
        )
        with self.assertRaises(launch.LaunchError) as caught:
            launch.launch(self.suite)
        assert caught.exception.field == "thresholds"

    def test_load_options_are_checked(self):
        for body, says in (
            ({"mode": "load", "users": 5}, "duration: a load run needs a duration or"),
            ({"mode": "load", "users": 0, "duration": 5}, "users must be between 1 and 1000"),
            ({"mode": "soak", "duration": 5}, "mode must be one of tests, load"),
            ({"mode": "load", "duration": 5, "spawn_rate": -1.0}, "spawn_rate must be between"),
        ):
            response = self.post(**body)
            assert response.status_code == 400, body
            assert says in response.json()["detail"], response.json()
        assert not Run.objects.exists()

    def test_load_options_in_a_tests_run_are_refused_not_ignored(self):
        for name, value in (("users", 50), ("duration", 60), ("spawn_rate", 5.0)):
            response = self.post(**{name: value})
            assert response.status_code == 400, name
            assert f"{name} appl" in response.json()["detail"], response.json()
            assert "add mode load" in response.json()["detail"]
        assert not Run.objects.exists()
        # A configuration's own load options may rest while it runs its tests once.
        self.config.users, self.config.duration = 5, 30
        self.config.save()
        assert self.post().status_code == 201

    def test_a_misspelt_or_unknown_field_is_a_422_naming_it(self):
        response = self.post(worker=8)
        assert response.status_code == 422
        assert "worker" in str(response.json()["detail"])
        _, staff_token = ApiToken.create_for(self.staff, "staff")
        sweep = self.client.post(
            "/api/suites/demo/sweep",
            [],
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {staff_token}",
        )
        assert sweep.status_code == 422, sweep.json()
        assert not Run.objects.exists()

    def test_the_launch_form_keeps_load_and_machine_options_apart(self):
        self.login_member()
        page = self.client.get("/suites/demo/").content.decode()
        assert '<details class="options"><summary>Load mode</summary>' in page
        assert '<details class="options"><summary>Machines (agents)</summary>' in page
        response = self.client.post("/suites/demo/", {"config": self.config.pk, "users": "5"})
        self.assertContains(response, "users apply to load runs", status_code=400)
        # The section holding the error is open.
        self.assertContains(
            response, '<details class="options" open><summary>Load mode', status_code=400
        )
        assert not Run.objects.exists()
