"""python manage.py extract_va DATASET --source {facechannel,expression,dataset} [--chunk-size N] [--sync]"""
from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from inference.models import Dataset
from inference.services.va import VA_SOURCES, va_extract_dataset, va_queue_dataset


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError(value)
    return number


def _dataset(key: str) -> Dataset:
    found = Dataset.objects.filter(name=key).first()
    if found is None and key.isdigit():
        found = Dataset.objects.filter(pk=int(key)).first()
    if found is None:
        names = ", ".join(Dataset.objects.values_list("name", flat=True)[:20]) or "none imported yet"
        raise CommandError(f"unknown dataset {key!r} (known: {names})")
    return found


class Command(BaseCommand):
    help = ("Compute valence/arousal for every sample of a dataset (upserts VAEstimate rows; safe to re-run). "
            "Queues chunks on the 'va' Celery queue, or runs in this process with --sync or when Celery is eager.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("dataset", help="Dataset name (or numeric id).")
        parser.add_argument("--source", required=True, choices=VA_SOURCES,
                            help="facechannel: the FaceChannel port (needs FACECHANNEL_WEIGHTS); expression: VA "
                                 "derived from the FER classifier (EXPRESSION_MODEL + WORD_NORMS); dataset: "
                                 "the imported ground truth.")
        parser.add_argument("--chunk-size", type=_positive_int, default=32,
                            help="Samples per chunk (one Celery message, one batched forward pass). Default 32.")
        parser.add_argument("--sync", action="store_true",
                            help="Run in this process instead of queueing Celery tasks.")

    def handle(self, *args: Any, **options: Any) -> None:
        dataset, source, chunk_size = _dataset(options["dataset"]), options["source"], options["chunk_size"]
        try:
            if options["sync"] or settings.CELERY_TASK_ALWAYS_EAGER:
                with tqdm(total=dataset.samples.count(), unit="sample", desc=f"VA {source}",
                          disable=options["verbosity"] < 1) as bar:
                    report = va_extract_dataset(dataset_id=dataset.pk, source=source, chunk_size=chunk_size,
                                                progress=bar.update)
            else:
                queued = va_queue_dataset(dataset_id=dataset.pk, source=source, chunk_size=chunk_size)
        except (ImproperlyConfigured, ValueError) as exc:
            # A missing or wrong model file, or a bad argument: nothing was written.
            raise CommandError(str(exc)) from exc
        if options["sync"] or settings.CELERY_TASK_ALWAYS_EAGER:
            for sample_id, message in list(report["errors"].items())[:20]:
                self.stderr.write(f"sample {sample_id}: {message}")
            if len(report["errors"]) > 20:
                self.stderr.write(f"... and {len(report['errors']) - 20} more error(s)")
            ok = report["done"] - report["no_face"]
            self.stdout.write(f"dataset {dataset.name}, source {source}: {ok} ok, {report['no_face']} no face, "
                              f"{report['failed']} error(s)")
        else:
            self.stdout.write(f"dataset {dataset.name}, source {source}: queued {queued['chunks']} chunk(s) "
                              f"({queued['samples']} samples) on the 'va' queue")
