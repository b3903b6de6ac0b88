from __future__ import annotations

from argparse import ArgumentParser

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from inference.services.batches import batch_chunks_reap

MAX_TIMEOUT_S = 366 * 24 * 3600


class Command(BaseCommand):
    help = ("Re-queue batch chunks stuck past a timeout (dead worker, lost broker message) and advance "
            "stages left behind. Celery beat runs the same thing every BATCH_REAPER_INTERVAL seconds.")

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--timeout", type=float, default=None,
                            help=f"Seconds a chunk may stay queued or running (default BATCH_CHUNK_TIMEOUT, "
                                 f"now {settings.BATCH_CHUNK_TIMEOUT}).")

    def handle(self, *args, timeout: float | None, **options) -> None:
        # Also refuses NaN and inf; a year is beyond any chunk (and a date before year 1 cannot be computed).
        if timeout is not None and not 0 <= timeout <= MAX_TIMEOUT_S:
            raise CommandError(f"--timeout must be from 0 to {MAX_TIMEOUT_S} seconds (a year), not {timeout}")
        counts = batch_chunks_reap(timeout_s=timeout)
        self.stdout.write(", ".join(f"{count} {what}" for what, count in counts.items()))
