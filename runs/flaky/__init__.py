"""Flakiness: the per-test summary (`models.TestStat`), how a run folds into it (`summary`), the
thread that folds outside runs off the request's path (`recorder`), quarantine, a test's history,
error signatures (`errors`) and the flaky/failing lists (`queries`). Its pages live in
runs.pages.flaky and its API in runs.api.flaky: this package knows neither."""
