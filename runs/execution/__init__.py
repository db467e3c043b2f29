"""Running suites in this process: the only package that drives the engine (`runner`).

`launch` turns a configuration into a queued Run and a RunSpec, `pytest_input` is the gate every
user-typed pytest argument passes, `dispatcher` starts queued runs on the pool and cancels them,
`sink` stores the engine's events and hands them to `runs.live`; `environment` wires the pool,
the dispatcher, the sink, the publisher and the history thread of one process; `prestart`
warms `run_suite PATH`'s interpreter before Django starts (called by manage.py).
"""
