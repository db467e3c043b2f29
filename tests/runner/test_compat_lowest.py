"""The engines in a suite interpreter with the oldest supported versions (pyproject's bounds)."""

from tests.runner.compat_cases import interpreter
from tests.runner.test_fork import (  # noqa: F401 - collected again here
    test_a_crashed_worker_is_replaced_and_the_run_goes_on,
    test_grouping_modes_keep_units_on_one_worker,
    test_outcomes_events_and_terminal,
    test_repeats_get_their_own_nodeids,
    test_reruns_are_recorded_per_attempt,
)
from tests.runner.test_fork_workers import test_workers_look_like_xdist_workers  # noqa: F401
from tests.runner.test_fork_xdist_plugins import (  # noqa: F401
    test_cov_totals_match_a_serial_run,
    test_reruns_rerun_a_test_that_killed_its_worker,
)
from tests.runner.test_private_api_warnings import (  # noqa: F401
    test_the_versions_in_use_raise_no_warning,
)
from tests.runner.test_runner_plugin import (  # noqa: F401
    test_loadgroup_keeps_marked_tests_together,
    test_workers_skip_the_terminal_summary,
)
from tests.test_ingest import (  # noqa: F401 - the ingestion plugin in a CI job's interpreter
    server,
    test_xdist_run_is_streamed_and_closed,
)

suite_python = interpreter("lowest")
