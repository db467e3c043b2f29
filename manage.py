#!/usr/bin/env python
"""Django's command-line utility for Parallel Test Dashboard."""

import gc
import os
import sys


def main() -> None:
    gc.disable()  # during start-up only: runs.apps.RunsConfig.ready turns it back on
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
    from runs.execution import prestart

    prestart.start(sys.argv)  # run_suite PATH: its interpreter warms up while Django starts
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
