"""'Rerun K times': a run of just one test, repeated, on the configuration of a run."""

from runs.flaky import summary as flaky
from runs.models import Run
from tests.base import BaseTestCase
from tests.factories import make_run

NODE = "tests/test_flaky.py::test_sometimes"
URL = "/suites/demo/rerun/"


class RerunTests(BaseTestCase):
    def setUp(self):
        self.source = make_run(
            self.suite,
            workers=3,
            status=Run.Status.FAILED,
            config=self.config,
            user=self.member,  # their own run: a rerun repeats its configuration
            results=[
                (f"{NODE}[1-2]", "gw0", "failed", 0.1),
                (f"{NODE}[2-2]", "gw1", "passed", 0.1),
            ],
        )
        self.source.config_snapshot.update(workers=3, reruns=1, keyword="sometimes")
        self.source.save()
        flaky.record_run(self.source)

    def test_launches_the_test_repeated_on_the_same_configuration(self):
        self.login_member()
        response = self.client.post(
            URL, {"nodeid": f"{NODE}[1-2]", "times": "7", "run": self.source.id}
        )
        run = Run.objects.exclude(pk=self.source.pk).get()
        self.assertRedirects(response, run.get_absolute_url(), fetch_redirect_response=False)
        snap = run.config_snapshot
        self.assertEqual(snap["repeat"], 7)
        self.assertEqual((snap["workers"], snap["reruns"], snap["keyword"]), (3, 1, "sometimes"))
        self.assertEqual(snap["extra_args"][-1], NODE)  # the base node id, no repeat suffix
        self.assertEqual(run.status, Run.Status.QUEUED)
        self.assertEqual(run.user, self.member)

    def test_a_run_whose_snapshot_holds_load_settings_is_rerun_as_a_run_of_tests(self):
        """Every snapshot carries the load options (users 10, spawn rate 10 by default), which
        a launch in tests mode refuses: staff and a run's launcher could rerun nothing."""
        for mode in ("tests", "load"):
            with self.subTest(mode=mode):
                self.source.config_snapshot.update(
                    mode=mode, users=10, spawn_rate=10.0, think_time=0.0, thresholds=[]
                )
                self.source.save()
                self.login_staff()
                self.client.post(URL, {"nodeid": NODE, "times": "4", "run": self.source.id})
                rerun = Run.objects.exclude(pk=self.source.pk).latest("id")
                snap = rerun.config_snapshot
                assert (snap["mode"], snap["repeat"], snap["workers"]) == ("tests", 4, 3)
                rerun.delete()

    def test_a_rerun_is_labelled_and_kept_out_of_trends_and_reports(self):
        self.login_member()
        self.client.post(URL, {"nodeid": NODE, "times": "5", "run": self.source.id})
        rerun = Run.objects.exclude(pk=self.source.pk).get()
        Run.objects.filter(pk=rerun.pk).update(
            status=Run.Status.PASSED, wall_seconds=1.0, efficiency=0.2, balance=3.0, workers=3
        )
        Run.objects.filter(pk=self.source.pk).update(balance=1.1)
        self.assertEqual(rerun.rerun_of, NODE)
        page = self.client.get(rerun.get_absolute_url())
        self.assertContains(page, "Rerun of")
        self.assertContains(page, f'href="/suites/demo/tests/{NODE}"')
        points = self.client.get("/trends/demo/data/").json()["points"]
        self.assertEqual([p["run_id"] for p in points], [self.source.pk])
        self.assertEqual(list(Run.objects.whole()), [self.source])
        report = self.client.get("/suites/demo/report/")
        self.assertEqual(report.context["figures"]["all_runs"], 1)
        self.assertEqual([r.pk for r in report.context["worst_balanced"]], [self.source.pk])

    def test_without_a_run_it_uses_the_tests_latest_run(self):
        self.login_member()
        self.client.post(URL, {"nodeid": NODE, "times": "3"})
        run = Run.objects.exclude(pk=self.source.pk).get()
        self.assertEqual((run.config_snapshot["repeat"], run.config_snapshot["workers"]), (3, 3))

    def test_rejects_options_unknown_tests_and_bad_counts(self):
        self.login_member()
        for data in (
            {"nodeid": "--co", "times": "2"},
            {"nodeid": "-p evil", "times": "2"},
            {"nodeid": "tests/x.py::nope", "times": "2"},
            {"nodeid": NODE, "times": "0"},
            {"nodeid": NODE, "times": "many"},
            {"nodeid": NODE, "times": "100000"},
        ):
            self.assertEqual(self.client.post(URL, data).status_code, 302)
        self.assertEqual(Run.objects.count(), 1)

    def test_post_only_and_login_required(self):
        self.login_member()
        self.assertEqual(self.client.get(URL).status_code, 405)
        self.client.logout()
        self.client.post(URL, {"nodeid": NODE, "times": "2"})
        self.assertEqual(Run.objects.count(), 1)


def test_a_rerun_gives_stored_auto_and_all_back_as_a_user_gives_them():
    """workers 0 and machines 0 are how 'auto' and 'all' are stored; a rerun of a run over
    every idle agent was refused ('machines must be between 1 and 64, got 0')."""
    from runs.execution.launch import Overrides
    from runs.pages.flaky import rerun_overrides

    source = Run(config_snapshot={"workers": 0, "machines": 0, "queue": "default", "reruns": 1})
    overrides = rerun_overrides(source, 3)
    assert (overrides["workers"], overrides["machines"]) == ("auto", "all")
    assert Overrides.clean(overrides).values["machines"] == 0
