"""Insight: what a team asks after "how did this run go" (issue #17).

`compare` holds pure functions over result rows (two runs' tests grouped: new failures, fixed,
still failing, newly flaky, added, removed, slower, faster; per-worker balance side by side);
`queries` loads the rows, one query per side, and picks the run to compare with by default.
It sits beside runs.flaky in the layers: endpoints use it, it uses only the models.
"""
