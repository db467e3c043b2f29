"""Insight: what a team asks after "how did this run go" (issue #17).

`compare` holds pure functions over result rows (two runs' tests grouped: new failures, fixed,
still failing, newly flaky, added, removed, slower, faster; per-worker balance side by side);
`queries` loads the rows, one query per side, and picks the run to compare with by default.
`breakdown`: where one run's wall time went. `scaling`: the speedup curve of a suite's runs at
several worker counts, an Amdahl fit and a recommended worker count; `scaling_data` gathers
those runs from the database. It sits beside runs.flaky in the layers: endpoints use it, it
uses only the models, and nothing here changes a row.
"""
