"""Load mode: the selected tests run as concurrent users, every iteration and every HTTP
request measured into mergeable histograms.

``pytest -p _ptd_inrun.plugin --ptd-load-users 100 --ptd-load-duration 60 ...`` collects
once; the controller (``controller``) forks P load processes (``process``) that inherit the
collected session, each running its share of users as threads (``isolation``: how one pytest
session runs tests in many threads, session and module fixtures once per process, function
fixtures per iteration). Each iteration is a test's setup, call and teardown; each request a
test makes with ``requests`` is measured too (``http``). Each process sums what it measured
into per-name ``histogram.Entry`` deltas (``recorder``) and sends them once a second.

Events (JSON lines on the run's event stream, each with "type" and "time"):

* ``load_start`` once: ``users, spawn_rate, duration, iterations, think_time, processes,
  tests`` (node ids).
* ``load_tick`` at most once a second per process, when something changed: ``process``
  ("p0"...), ``second`` (whole seconds since load_start), ``users`` (active in that process),
  ``tests`` {nodeid: Entry.to_dict()}, ``requests`` {"GET /items/{id}": Entry.to_dict()},
  deltas since that process's previous tick.
* ``load_error`` in the same cadence: ``process, name`` (node id or endpoint), ``kind``
  ("failure": a failed assertion / pytest.fail / HTTP status >= 400; "exception": anything
  else), ``error`` ("ExcType: first line", the grouping key), ``traceback`` (the first
  example, at most 8 KiB), ``count`` (delta).
* ``load_stop`` once every user stopped: ``reason`` "duration", "iterations" or "cancelled".

No per-iteration ``test`` event. pytest exits 0 when the load ran (thresholds are the
dashboard's), non-zero on a usage or collection error or when a load process died.

(The package imports nothing itself: the dashboard reads ``histogram`` without pytest.)
"""
