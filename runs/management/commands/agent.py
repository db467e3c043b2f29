"""`python manage.py agent --name NAME [--workers N|auto] [--queue Q] [--path-map FROM=TO ...]`.

A thin wrapper: the agent is ``runner.agent`` (plain Python and celery), which never touches
the database; it reaches the dashboard over HTTP (``PTD_SERVER``, ``PTD_TOKEN``) and the broker
(``PTD_BROKER_URL``, default ``REDIS_URL``). ``python -m runner.agent`` is the same program on
a machine without the dashboard's settings. The arguments go to it as they are (argparse there,
exit 2 with one line on bad usage), not through Django's parser.
"""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Run a Celery agent that takes shards of runs over several machines."

    def run_from_argv(self, argv):
        from runner.agent.main import main

        sys.exit(main(argv[2:]))

    def handle(self, *args, **options):  # pragma: no cover - run_from_argv does the work
        from runner.agent.main import main

        return str(main(list(args)))
