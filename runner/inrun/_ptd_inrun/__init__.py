"""Code that runs inside a run's own pytest process (stdlib + pytest, xdist when present).

Injected through PYTHONPATH, loaded with ``-p _ptd_inrun.plugin``. The odd package name keeps
it from colliding with anything in the user's suite. Relative imports only.
"""
