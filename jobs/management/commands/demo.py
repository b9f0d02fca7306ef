import os
import shutil
import socket
import sys

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from config.env import BASE_DIR
from config.metrics import metrics_files_clear
from jobs.demo import demo_seed, held_work_requeue


def _port_check(host: str, port: int) -> None:
    """Refuse before printing anything when the web server could not listen: the banner
    said the demo was ready, then gunicorn failed and honcho stopped everything."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise CommandError(
                f"Cannot listen on {host}:{port} ({exc.strerror}): another program holds it. "
                "Give another port with --port."
            ) from None


class Command(BaseCommand):
    help = (
        "Migrate, create the demo user, API key and data, print them, then start the web server, "
        "the workers and the scheduler together (the Procfile's web, worker, waits and beat, "
        "through honcho)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--port", type=int, default=8000, help="The port the web server listens on (8000)."
        )
        parser.add_argument(
            "--host",
            default="127.0.0.1",
            help="The address it listens on: this machine only unless told otherwise "
            "(0.0.0.0 for every interface). The demo prints its admin password and API key "
            "and serves plain HTTP with Secure cookies off: keep it on this machine.",
        )
        parser.add_argument(
            "--no-serve", action="store_true", help="Prepare and print, but start nothing."
        )

    def handle(self, *args, port, host, no_serve, **options):
        if not no_serve:
            _port_check(host, port)
        call_command("migrate", interactive=False, verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
        demo = demo_seed()
        if settings.CELERY_BROKER_URL.startswith("filesystem://"):
            held_work_requeue()  # the chunks its last processes held died with them
        shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104
        base = f"http://{shown}:{port}"
        self.stdout.write(
            "\n".join(
                [
                    "",
                    "Workflows API demo is ready.",
                    f"  API:        {base}/api/v1/workflows",
                    f"  API docs:   {base}/api/docs  (Authorize with the API key below, "
                    "or log in to the admin)",
                    f"  Admin:      {base}/admin/  user {demo['username']!r}, "
                    f"password {demo['password']!r}",
                    f"  Health:     {base}/healthz",
                    f"  API key:    {demo['api_key']}",
                    f"  Entity type {demo['entity_type'].name!r}: {demo['entity_type'].id}",
                    f"  Workflow    {demo['workflow'].name!r}: {demo['workflow'].id}",
                    f"  Workflow    {demo['batch_workflow'].name!r}: {demo['batch_workflow'].id}",
                    f"  Listening on {host}:{port} (--host and --port to change it)",
                    "",
                    f"  Try: curl -H 'Authorization: Bearer {demo['api_key']}' "
                    f"{base}/api/v1/entities",
                    "  Run the workflow on every product (Admin > Entities > select > action),",
                    f"  or POST {base}/api/v1/workflows/{demo['workflow'].id}/run "
                    '{"entityIds": [...]}',
                    "",
                ]
            )
        )
        if no_serve:
            return
        # The Procfile's commands (gunicorn, celery) live beside this Python, in the venv.
        bin_dir = os.path.dirname(sys.executable)
        env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
        # The demo serves plain HTTP on this machine: browsers that refuse Secure cookies
        # from http:// (Safari does, even on localhost) could not log in to the admin.
        env.setdefault("SECURE_COOKIES", "false")
        # The Procfile's web binds WEB_HOST (every interface by default, for production).
        env["WEB_HOST"] = host
        # Batch runs end within seconds on the local stand-in: poll them that often too.
        env.setdefault("AI_BATCH_POLL_S", "5")
        honcho = shutil.which("honcho", path=bin_dir) or "honcho"
        # The machine's processes start: a new set of counters (README, Metrics).
        metrics_files_clear(settings.PROMETHEUS_MULTIPROC_DIR)
        sys.stdout.flush()
        os.chdir(BASE_DIR)
        # Replace this process so Ctrl-C stops web and workers together.
        processes = ["web", "worker", "waits", "beat"]
        os.execve(honcho, [honcho, "start", "--port", str(port), *processes], env)  # noqa: S606
