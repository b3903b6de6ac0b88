from __future__ import annotations

from argparse import ArgumentParser

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from evalplatform.celery import app
from inference.stages import QUEUES


class Command(BaseCommand):
    help = ("Run one Celery worker for a one-machine setup (the demo): it consumes every queue — default and "
            "each stage's queue from the stage registry — on the configured broker, which without REDIS_URL is "
            "the embedded filesystem broker in CELERY_BROKER_FOLDER (no server). Also runs the batch reaper "
            "schedule. Stop it with Ctrl-C or SIGTERM.")

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--concurrency", type=int, default=2,
                            help="Worker threads (chunks run at once). Default 2.")
        parser.add_argument("--loglevel", default="INFO", help="Celery log level. Default INFO.")
        parser.add_argument("--no-beat", action="store_true", help="Do not run the batch reaper schedule.")

    def handle(self, *args, concurrency: int, loglevel: str, no_beat: bool, **options) -> None:
        if concurrency < 1:
            raise CommandError("--concurrency must be at least 1")
        if settings.CELERY_TASK_ALWAYS_EAGER:
            raise CommandError("CELERY_TASK_ALWAYS_EAGER is on: tasks run where they are sent, a worker would "
                               "never receive one; unset it")
        queues = ",".join(["default", *QUEUES])
        argv = ["worker", "-Q", queues, "--pool", "threads", "--concurrency", str(concurrency), "--loglevel", loglevel,
                "--without-heartbeat", "--without-mingle", "--without-gossip", "-n", "embedded@%h"]
        if not no_beat:
            argv += ["--beat", "--schedule", str(settings.DATA_DIR / "celerybeat-schedule")]
        self.stdout.write(f"embedded worker: queues {queues} on {settings.CELERY_BROKER_URL}")
        app.worker_main(argv)
