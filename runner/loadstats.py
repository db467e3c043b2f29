"""Load mode's statistics shape (``Histogram``, ``Entry``), for the dashboard.

The in-run package counts in it and ships its dicts in events; ``runs`` merges and stores them.
``runs`` never imports ``_ptd_inrun`` (the suite's interpreter's package) itself: this module is
the one door, so the shape is declared once, on the engine's side.
"""

from _ptd_inrun.load.histogram import PERCENTILES, Entry, Histogram

__all__ = ["PERCENTILES", "Entry", "Histogram"]
