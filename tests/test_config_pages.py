"""A suite's run configurations: staff add, edit, make default and delete them in the UI."""

from runs.models import Run, RunConfig
from tests.base import BaseTestCase
from tests.factories import make_run

FIELDS = {
    "name": "smoke",
    "workers": "8",
    "engine": "fork",
    "dist": "loadfile",
    "repeat": "1",
    "reruns": "1",
    "timeout": "",
    "keyword": "smoke and not slow",
    "markers": "",
}


class ConfigPagesTests(BaseTestCase):
    def test_staff_add_a_configuration_that_launching_offers(self):
        self.login_staff()
        self.assertContains(self.client.get("/suites/demo/"), 'id="config-new"')
        response = self.client.post("/suites/demo/configs/new/", FIELDS)
        self.assertRedirects(response, "/suites/demo/")
        smoke = self.suite.configs.get(name="smoke")
        self.assertEqual((smoke.workers, smoke.dist, smoke.reruns), (8, "loadfile", 1))
        self.assertEqual(smoke.keyword, "smoke and not slow")
        self.assertFalse(smoke.is_default)
        page = self.client.get("/suites/demo/")
        self.assertEqual(list(page.context["form"].fields["config"].queryset), [self.config, smoke])
        launched = self.client.post("/suites/demo/", {"config": smoke.pk})
        run = Run.objects.get()
        self.assertRedirects(launched, f"/runs/{run.pk}/", fetch_redirect_response=False)
        self.assertEqual(run.config_snapshot["dist"], "loadfile")

    def test_one_default_at_a_time_and_the_default_stays(self):
        self.login_staff()
        self.client.post("/suites/demo/configs/new/", {**FIELDS, "is_default": "on"})
        smoke = self.suite.configs.get(name="smoke")
        self.assertEqual(list(self.suite.configs.filter(is_default=True)), [smoke])
        self.assertEqual(self.suite.default_config(), smoke)
        # The default cannot be unset (another must take its place) nor deleted.
        unset = self.client.post(f"/suites/demo/configs/{smoke.pk}/", FIELDS)
        self.assertContains(unset, "Make another configuration the default", status_code=400)
        self.client.post(f"/suites/demo/configs/{smoke.pk}/delete/")
        self.assertTrue(RunConfig.objects.filter(pk=smoke.pk).exists())

    def test_edit_and_delete_keep_runs_and_their_snapshot(self):
        self.login_staff()
        self.client.post("/suites/demo/configs/new/", FIELDS)
        smoke = self.suite.configs.get(name="smoke")
        run = make_run(self.suite, config=smoke)
        edited = self.client.post(f"/suites/demo/configs/{smoke.pk}/", {**FIELDS, "workers": "2"})
        self.assertRedirects(edited, "/suites/demo/")
        smoke.refresh_from_db()
        self.assertEqual(smoke.workers, 2)
        self.assertContains(self.client.get(f"/suites/demo/configs/{smoke.pk}/"), "Delete")
        self.assertRedirects(
            self.client.post(f"/suites/demo/configs/{smoke.pk}/delete/"), "/suites/demo/"
        )
        self.assertFalse(RunConfig.objects.filter(pk=smoke.pk).exists())
        run.refresh_from_db()
        self.assertIsNone(run.config_id)

    def test_bad_input_is_a_form_error_and_saves_nothing(self):
        self.login_staff()
        for bad, message in (
            ({"name": "default"}, "already has a configuration"),
            ({"name": "no spaces"}, "Use letters, digits"),
            ({"workers": "65"}, "workers must be between 1 and 64"),
            ({"workers": "-1"}, "greater than or equal to 0"),
            ({"repeat": "0"}, "repeat must be between 1 and 1000"),
            ({"dist": "random"}, "Select a valid choice"),
            ({"timeout": "0"}, "timeout must be between 1 and 604800"),
            ({"keyword": "smoke and"}, "not a pytest expression"),
            ({"markers": "not (slow"}, "not a pytest expression"),
            # What the model's validators let through and the launch refused (or ran wrong):
            ({"timeout": "9999999999999"}, "timeout must be between 1 and 604800"),
            ({"mode": "load", "think_time": "1e308"}, "think_time must be between 0 and 3600"),
            ({"mode": "load", "spawn_rate": "1e308"}, "spawn_rate must be between"),
        ):
            with self.subTest(bad=bad):
                response = self.client.post("/suites/demo/configs/new/", {**FIELDS, **bad})
                self.assertContains(response, message, status_code=400)
        self.assertEqual(list(self.suite.configs.all()), [self.config])

    def test_members_and_outsiders_cannot_manage_configurations(self):
        urls = ["/suites/demo/configs/new/", f"/suites/demo/configs/{self.config.pk}/"]
        for url in urls:
            self.assertEqual(self.client.get(url).status_code, 302)  # to the login page
        self.login_member()
        self.assertNotContains(self.client.get("/suites/demo/"), 'id="config-new"')
        for url in urls:
            self.assertEqual(self.client.get(url).status_code, 403)
            self.assertEqual(self.client.post(url, FIELDS).status_code, 403)
        delete = f"/suites/demo/configs/{self.config.pk}/delete/"
        self.assertEqual(self.client.post(delete).status_code, 403)
        self.assertEqual(list(self.suite.configs.all()), [self.config])

    def test_unknown_configuration_or_suite_is_404(self):
        self.login_staff()
        self.assertEqual(self.client.get("/suites/demo/configs/999/").status_code, 404)
        self.assertEqual(self.client.get("/suites/nope/configs/new/").status_code, 404)
        self.assertEqual(self.client.get("/suites/demo/configs/1/delete/").status_code, 405)


class SavedBeforeTheChecksTests(BaseTestCase):
    def test_a_configuration_saved_with_a_value_no_launch_takes_is_refused_saying_which(self):
        """Saved before the forms checked as a launch does (a 10^13 s timeout ran with no
        timeout at all): the launch's last gate refuses it, naming the option."""
        from runs.execution import launch

        RunConfig.objects.filter(pk=self.config.pk).update(timeout=2_000_000_000)  # 63 years
        self.config.refresh_from_db()
        try:
            launch.launch(self.config)
        except launch.LaunchError as exc:
            assert exc.field == "timeout" and "between 1 and 604800" in exc.message
        else:
            raise AssertionError("launched")
        assert not Run.objects.exists()
        # A load setting of a configuration that runs its tests does not stop it.
        RunConfig.objects.filter(pk=self.config.pk).update(timeout=None, think_time=1e308)
        self.config.refresh_from_db()
        assert launch.launch(self.config).status == Run.Status.QUEUED

    def test_the_upgrade_brings_saved_configurations_and_queued_runs_within_the_bounds(self):
        import importlib

        from django.apps import apps

        migration = importlib.import_module("runs.migrations.0015_clamp_configuration_options")
        RunConfig.objects.filter(pk=self.config.pk).update(
            timeout=2_000_000_000, think_time=1e308, repeat=5, reruns=99
        )
        queued = make_run(self.suite, status=Run.Status.QUEUED)
        queued.config_snapshot.update(timeout=2_000_000_000, workers=0, keyword="k")
        queued.save()
        migration.clamp(apps, None)
        self.config.refresh_from_db()
        assert (self.config.timeout, self.config.think_time) == (604800, 3600)
        assert (self.config.repeat, self.config.reruns) == (5, 20)  # within: as it was
        queued.refresh_from_db()
        snap = queued.config_snapshot
        assert (snap["timeout"], snap["workers"], snap["keyword"]) == (604800, 0, "k")

    def test_the_models_bounds_are_the_launchs_so_the_admin_saves_none_past_them(self):
        from django.core.exceptions import ValidationError

        from runner import options

        config = RunConfig(suite=self.suite, name="admin-made", timeout=10**9, think_time=1e308)
        try:
            config.full_clean()
        except ValidationError as exc:
            assert {"timeout", "think_time"} <= set(exc.message_dict)
        else:
            raise AssertionError("saved past the bounds")
        for name in ("repeat", "reruns", "timeout", "users", "spawn_rate", "duration"):
            field = RunConfig._meta.get_field(name)
            limits = sorted(v.limit_value for v in field.validators if hasattr(v, "limit_value"))
            option = options.BY_NAME[name]
            assert limits == [option.low, option.high], name
