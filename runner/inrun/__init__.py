"""The directory a run's interpreter gets on PYTHONPATH (``PATH``). It holds one package,
``_ptd_inrun``: the code that runs inside the run's own pytest process.

The server imports that package by the same top-level name, from this same directory
(``runner/__init__`` puts it on ``sys.path``), so it has one name everywhere.
"""

from pathlib import Path

PATH = str(Path(__file__).resolve().parent)
