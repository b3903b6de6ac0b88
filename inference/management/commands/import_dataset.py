from __future__ import annotations

from argparse import ArgumentParser

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from inference.importers import FORMATS
from inference.services.imports import LABEL_SETS, ImportFailed, dataset_import


class Command(BaseCommand):
    help = "Import a dataset (folder-per-class, Emotic, or CSV/JSONL manifest). Safe to re-run."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("path", help="Folder (folder format), Annotations.mat or CSV (emotic), CSV/JSONL (manifest).")
        parser.add_argument("--name", required=True, help="Dataset name (a slug); re-using it updates that dataset.")
        parser.add_argument("--format", required=True, dest="fmt", help=f"One of: {', '.join(FORMATS)}.")
        parser.add_argument("--label-set", choices=sorted(LABEL_SETS), default=None,
                            help="Allowed labels: basic (7 basic emotions) or emotic (26 categories). "
                                 "Default: emotic for the emotic format, basic otherwise.")
        parser.add_argument("--images-root", default=None,
                            help="Emotic only: folder the Folder/Filename columns are relative to "
                                 "(default: the annotation file's folder).")
        parser.add_argument("--follow-symlinks", action="store_true",
                            help="Follow symbolic links that lead outside the dataset folder (refused by default).")
        parser.add_argument("--max-errors-shown", type=int, default=50, help="How many row errors to print.")

    def handle(self, *args, path: str, name: str, fmt: str, label_set: str | None, images_root: str | None,
               max_errors_shown: int, follow_symlinks: bool = False, **options) -> None:
        bar = tqdm(desc=f"import {name}", unit="row", disable=options.get("verbosity", 1) == 0)
        try:
            report = dataset_import(path=path, name=name, fmt=fmt, label_set=label_set, images_root=images_root,
                                    follow_symlinks=follow_symlinks, progress=bar.update)
        except ImportFailed as exc:
            raise CommandError(str(exc)) from exc
        finally:
            bar.close()
        for error in report.errors[:max_errors_shown]:
            self.stderr.write(f"  skipped {error}")
        if len(report.errors) > max_errors_shown:
            self.stderr.write(f"  … and {len(report.errors) - max_errors_shown} more")
        self.stdout.write(report.summary())
        if report.errors:  # scripts must notice a partial import
            raise CommandError(f"{len(report.errors)} row(s) failed to import (listed above)")
