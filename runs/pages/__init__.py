"""The HTML pages: suites and runs (`views`, `forms`), flakiness (`flaky`), the report, trends,
API tokens, and the middleware that gives errors the shape each client reads."""
