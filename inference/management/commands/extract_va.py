"""python manage.py extract_va DATASET --source {facechannel,expression,dataset} [--chunk-size N] [--inline|--wait]"""
from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from inference.management.batch_cli import (
    batch_arguments_add,
    batch_errors_write,
    batch_finished,
    batch_start,
)
from inference.models import Batch, VAEstimate
from inference.selectors import NotFound, dataset_get
from inference.services.va import va_model_version_configured


class Command(BaseCommand):
    help = ("Compute valence/arousal for the samples of a dataset that have none from the configured model yet "
            "(a batch with the va stage; upserts VAEstimate rows, safe to re-run). The 'va' Celery workers run "
            "it, or this process with --inline.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("dataset", help="Dataset name (or numeric id).")
        parser.add_argument("--source", required=True, choices=VAEstimate.Source.values,
                            help="facechannel: the FaceChannel port (needs FACECHANNEL_WEIGHTS); expression: VA "
                                 "derived from the FER classifier (EXPRESSION_MODEL + WORD_NORMS); dataset: "
                                 "the imported ground truth.")
        batch_arguments_add(parser, chunk_size=32, unit="sample")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            dataset = dataset_get(key=options["dataset"])
        except NotFound as exc:
            raise CommandError(str(exc)) from exc
        source = options["source"]
        batch = batch_start(self, dataset=dataset, stages=[Batch.Stage.VA], va_source=source, options=options)
        if batch is None or not batch_finished(batch):
            return
        batch_errors_write(self, batch, item="sample")
        sample_ids = [pk for chunk in batch.chunks.all() for pk in chunk.item_ids]
        statuses = VAEstimate.objects.filter(sample_id__in=sample_ids, source=source,
                                             model_sha256=va_model_version_configured(source=source))
        ok = statuses.filter(status=VAEstimate.Status.OK).values("sample_id").distinct().count()
        no_face = statuses.filter(status=VAEstimate.Status.NO_FACE).values("sample_id").distinct().count()
        self.stdout.write(f"dataset {dataset.name}, source {source}: {ok} ok, {no_face} no face, "
                          f"{batch.failed} error(s) (batch {batch.pk} {batch.status})")
