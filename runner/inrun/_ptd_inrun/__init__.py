"""Code that runs inside a run's own pytest process (stdlib + pytest, xdist when present).

Injected through PYTHONPATH, loaded with ``-p _ptd_inrun.plugin``; the server imports it by the
same name. The odd package name keeps it from colliding with anything in the user's suite.
Relative imports only: nothing of ``runner`` outside this package exists in a run.

Owns the event stream (``events``, ``reporter``, ``plugin``, ``terminal``), test ids and groups
(``ids``, ``groups``), ``scheduling`` (longest-first core and its xdist adapter), ``fork`` (the
fork engine), ``load`` (load mode: the tests as concurrent users), ``zygote`` (a kept
interpreter that forks runs), ``lifeline`` (runs die with their server) and ``compat`` (what
differs between pytest/xdist versions).
"""

if __name__ != "_ptd_inrun":  # a second name would load every module twice
    raise ImportError(f"import _ptd_inrun by that name, not as {__name__}")
