"""loadgroup in a suite interpreter with pytest 8.4, the last whose node ids xdist rewrites."""

from tests.runner.compat_cases import interpreter
from tests.runner.test_fork import test_grouping_modes_keep_units_on_one_worker  # noqa: F401
from tests.runner.test_runner_plugin import (  # noqa: F401
    test_loadgroup_keeps_marked_tests_together,
    test_loadgroup_without_the_workers_groups_warns_loudly,
    test_workers_skip_the_terminal_summary,
)

suite_python = interpreter("pytest84")
