"""The directory a run's interpreter gets on PYTHONPATH (``PATH``). It holds one package,
``_ptd_inrun``: the code that runs inside the run's own pytest process.

The server imports that package by the same top-level name, from this same directory
(``runner/__init__`` puts it on ``sys.path``), so it has one name everywhere.
"""

import os

PATH = os.path.dirname(os.path.realpath(__file__))  # os.path: pathlib costs a watchdog ~15 ms
