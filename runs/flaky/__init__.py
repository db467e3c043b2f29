"""Flakiness: the per-test summary (`models.TestStat`), how a run folds into it (`summary`), the
error signatures (`errors`) and the queries pages and API share. Pages live in runs.pages.flaky,
the API in runs.api.flaky; this package knows neither."""
