"""The fork engine: collect once, fork N workers that inherit the session, dispatch over pipes.

Owns ``options`` (its options, and whether a run uses it), ``controller`` (the loop in the
pytest process), ``worker`` (a forked child running items), ``wire`` (framed pickles on pipes),
``nodes`` (what xdist-aware plugins see of a worker), ``plugins`` (rerunfailures and other
plugins' hooks across the fork), ``safety`` (inherited sockets and files) and ``compat``
(xdist's hooks without xdist).
"""

from .options import addoption, configure

__all__ = ["addoption", "configure"]
