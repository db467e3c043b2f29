"""PTD runner: executes pytest runs and turns them into events and metrics. Plain Python, no
Django, no ``runs``.

Owns ``pool`` (launching runs, limits, cancel, timeouts) with ``command`` (a run's argv and
environment), ``procs`` / ``watchdog`` (no process outlives its run), ``warm`` (runs forked
from kept interpreters), ``logcap`` (a run's log), ``metrics`` (pure metric functions) and
``options`` (the launch options a run may override). ``inrun`` holds ``_ptd_inrun``, the
package loaded inside the run's own pytest; ``client`` is what runs on CI machines (the
``ptd`` command and pytest plugin).
"""

import sys

from .inrun import PATH as _INRUN_PATH

# `_ptd_inrun` is imported under that one name here too, from the directory runs get.
if _INRUN_PATH not in sys.path:
    sys.path.append(_INRUN_PATH)
