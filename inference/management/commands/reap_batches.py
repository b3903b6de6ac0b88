from __future__ import annotations

from argparse import ArgumentParser

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from inference.services.batches import batch_chunks_reap


class Command(BaseCommand):
    help = ("Re-queue batch chunks stuck past a timeout (dead worker, lost broker message) and advance "
            "stages left behind. Celery beat runs the same thing every BATCH_REAPER_INTERVAL seconds.")

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--timeout", type=float, default=None,
                            help=f"Seconds a chunk may stay queued or running (default BATCH_CHUNK_TIMEOUT, "
                                 f"now {settings.BATCH_CHUNK_TIMEOUT}).")

    def handle(self, *args, timeout: float | None, **options) -> None:
        if timeout is not None and timeout < 0:
            raise CommandError("--timeout must be >= 0")
        counts = batch_chunks_reap(timeout_s=timeout)
        self.stdout.write(", ".join(f"{count} {what}" for what, count in counts.items()))
