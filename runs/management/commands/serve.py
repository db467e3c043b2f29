"""`python manage.py serve`: migrate, first-start setup, then HTTP + websockets + runner pool."""

from __future__ import annotations

import errno
import gc
import logging
import socket

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.urls import get_resolver

from runs.execution.environment import Environment, install
from runs.management import bootstrap

log = logging.getLogger("runs")


class Command(BaseCommand):
    help = "Serve the dashboard (HTTP and websockets, with the runner pool in this process)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--no-migrate", action="store_true", help="skip applying migrations")

    def handle(self, *args, host, port, no_migrate, **options):
        if not 0 < port < 65536:
            raise CommandError(f"--port must be between 1 and 65535, got {port}", returncode=2)
        check_address(host, port)  # before migrating and starting anything
        # daphne.server installs Twisted's asyncio reactor on import; import it first.
        from daphne.endpoints import build_endpoint_description_strings
        from daphne.server import Server, twisted_loop

        if not no_migrate:
            call_command("migrate", interactive=False, verbosity=0)
        # Static files compressed and content-hashed (~1 s, plotly.js the most), before the
        # application exists: WhiteNoise indexes the collected files when it is built.
        call_command("collectstatic", interactive=False, verbosity=0)
        from dashboard.asgi import application

        suite, created = bootstrap.ensure_demo_suite()
        if created:
            self.stdout.write(f"Registered the demo suite at {suite.path}")
        password = bootstrap.ensure_admin()
        if password:
            self.stdout.write(
                f"Created the admin user 'admin' with password: {password}\n"
                f"(also written to {settings.DATA_DIR / 'initial_admin_password'}; "
                "change it after logging in)"
            )
        # What serving needs lives as long as the server: every view module imported now
        # (not on the first request), then all of it set aside for good (gc.freeze), before
        # any run's objects exist, so a full collection scans only what runs and requests
        # make. bench_agents saw 55-77 ms pauses of every request (a lease, a batch of
        # results) once per run, and one of 350 ms.
        get_resolver().url_patterns  # noqa: B018 - imports the URLconf's modules
        gc.collect()
        gc.freeze()
        env = Environment(loop=twisted_loop)
        install(env)
        env.start_dispatcher()
        self.stdout.write(f"PTD is serving on http://{host}:{port}/ (Ctrl-C to stop)")
        self.stdout.flush()
        server = Server(
            application=application,
            endpoints=build_endpoint_description_strings(host=host, port=port),
            signal_handlers=True,
            verbosity=0,
            application_close_timeout=5,
        )
        try:
            server.run()
        finally:
            env.stop()
            install(None)
            self.stdout.write("PTD stopped.")
        if not server.listening_addresses:  # taken between the check and daphne's listen
            raise CommandError(f"could not listen on {host}:{port} (see above)", returncode=2)


def check_address(host: str, port: int) -> None:
    """A CommandError (exit 2, one line) unless this server can listen on host:port."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise CommandError(
            f"--host {host!r} is no address of this machine ({exc})", returncode=2
        ) from None
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will
        try:
            sock.bind(address)
        except OSError as exc:
            hint = " (another server there?)" if exc.errno == errno.EADDRINUSE else ""
            raise CommandError(
                f"cannot listen on {host}:{port}: {exc.strerror}{hint}", returncode=2
            ) from None
