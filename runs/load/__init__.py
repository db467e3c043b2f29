"""Load mode on the dashboard's side (issue #16): thresholds (``thresholds``), merging the
engine's per-process ticks into stored per-second and per-test / per-endpoint statistics
(``aggregate``), reading them back (``queries``), and the verdict a load run's thresholds give
its status (``verdict``). Exports live with the pages (runs.pages.load)."""
