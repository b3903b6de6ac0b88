"""`python manage.py participants_purge STUDY [--older-than DAYS]`: retention for participants' identities.

Erases the platform ids (and account links, comments) of a study's participants; their ratings stay, under
the same pseudonyms, so reports and earlier exports remain valid. Safe to re-run: erased participants are
skipped.
"""
from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from annotations.models import Study
from annotations.participants import participant_erase, participants_to_purge

MAX_DAYS = 36_500  # a century: beyond it the cut-off date would fall before year 1


class Command(BaseCommand):
    help = "Erase the identity of a study's participants (ratings are kept under their pseudonyms)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("study", help="Slug of the study.")
        parser.add_argument("--older-than", type=int, default=None, metavar="DAYS",
                            help="Only participants who joined more than DAYS days ago (default: all).")
        parser.add_argument("--dry-run", action="store_true", help="Count who would be erased; change nothing.")

    def handle(self, *args: Any, study: str, older_than: int | None, dry_run: bool, **opts: Any) -> None:
        found = Study.objects.filter(slug=study).first()
        if found is None:
            raise CommandError(f"no study {study!r}")
        if older_than is not None and not 0 <= older_than <= MAX_DAYS:
            raise CommandError(f"--older-than must be 0 or more days, at most {MAX_DAYS}, not {older_than}")
        targets = list(participants_to_purge(study=found, older_than_days=older_than))
        if not dry_run:
            for annotator in tqdm(targets, desc="erasing", unit="participant", disable=len(targets) < 50):
                participant_erase(annotator=annotator)
        scope = f"joined more than {older_than} day(s) ago" if older_than is not None else "all"
        verb = "would erase" if dry_run else "erased"
        self.stdout.write(f"study {found.slug}: {verb} the identity of {len(targets)} participant(s) ({scope}); "
                          "ratings kept under their pseudonyms")
