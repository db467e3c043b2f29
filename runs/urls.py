from django.urls import path

from runs.pages import agents, compare, flaky, load, report, scaling, tokens, trends, views

urlpatterns = [
    path("", views.home, name="home"),
    path("suites/", views.suite_list, name="suites"),
    path("suites/new/", views.suite_edit, name="suite_new"),
    path("suites/<str:name>/", views.suite_detail, name="suite"),
    path("suites/<str:name>/edit/", views.suite_edit, name="suite_edit"),
    path("suites/<str:name>/configs/new/", views.config_edit, name="config_new"),
    path("suites/<str:name>/configs/<int:config_id>/", views.config_edit, name="config_edit"),
    path(
        "suites/<str:name>/configs/<int:config_id>/delete/",
        views.config_delete,
        name="config_delete",
    ),
    # Flakiness and the QA report (issue #6)
    path("suites/<str:name>/flaky/", flaky.flaky_list, name="flaky_list"),
    path("suites/<str:name>/flaky/rebuild/", flaky.rebuild, name="flaky_rebuild"),
    path("suites/<str:name>/quarantine/", flaky.quarantine_list, name="quarantine_list"),
    path("suites/<str:name>/quarantine/set/", flaky.quarantine, name="quarantine"),
    path("suites/<str:name>/rerun/", flaky.rerun, name="test_rerun"),
    path("suites/<str:name>/tests/<path:nodeid>", flaky.test_history, name="test_history"),
    path("suites/<str:name>/report/", report.report_page, name="report"),
    path("suites/<str:name>/report/runs.csv", report.runs_csv, name="report_runs_csv"),
    path("suites/<str:name>/report/tests.csv", report.tests_csv, name="report_tests_csv"),
    # Scaling: sweeps and the speedup curve (issue #17)
    path("suites/<str:name>/scaling/", scaling.scaling_page, name="scaling"),
    path("suites/<str:name>/sweep/", scaling.start_sweep, name="sweep"),
    # Load runs (issue #16)
    path("suites/<str:name>/load/", load.trend, name="load_trend"),
    path("suites/<str:name>/load/compare/", load.compare, name="load_compare"),
    path("runs/<int:run_id>/load/stats.csv", load.stats_csv, name="load_stats_csv"),
    path("runs/<int:run_id>/load/series.csv", load.series_csv, name="load_series_csv"),
    path("runs/<int:run_id>/load/report.html", load.report, name="load_report"),
    path("runs/", views.run_list, name="runs"),
    path("runs/rows/", views.run_rows, name="run_rows"),
    path("runs/<int:run_id>/", views.run_detail, name="run"),
    path("runs/<int:run_id>/cancel/", views.run_cancel, name="run_cancel"),
    path("runs/<int:run_id>/log/", views.run_log, name="run_log"),
    # Insight (issue #17)
    path("runs/<int:run_id>/compare/", compare.compare_pick, name="compare_pick"),
    path("runs/<int:run_id>/compare/<int:other_id>/", compare.compare_page, name="compare"),
    path("agents/", agents.agent_list, name="agents"),
    path("tokens/", tokens.token_list, name="tokens"),
    path("tokens/<int:token_id>/revoke/", tokens.token_revoke, name="token_revoke"),
    path("trends/", trends.trends_page, name="trends"),
    path("trends/<str:name>/data/", trends.trends_data, name="trends_data"),
]
