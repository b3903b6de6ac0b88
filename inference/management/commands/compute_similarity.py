from __future__ import annotations

from argparse import ArgumentParser

from django.core.management.base import BaseCommand, CommandError

from inference.embeddings import embedder_families_parse, embedder_get
from inference.management.batch_cli import (
    batch_arguments_add,
    batch_errors_write,
    batch_finished,
    batch_start,
)
from inference.models import Batch, Generation, VAEstimate
from inference.selectors import NotFound, dataset_get
from inference.services.similarity import SIMILARITY_CHUNK_SIZE


class Command(BaseCommand):
    help = ("Cosine similarity between each generated description of a dataset and its reference descriptions, "
            "per embedder (a batch with the similarity stage). The 'embed' Celery workers run it, or this "
            "process with --inline. Safe to re-run: what is already scored is reused.")

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("dataset", help="Dataset name.")
        parser.add_argument("--embedders", default="word,bert,sentence",
                            help="Comma-separated embedder families: word, bert, sentence (default: all three).")
        parser.add_argument("--va-source", default=None, choices=VAEstimate.Source.values,
                            help="Score the descriptions made from this VA source. Default: the only source with "
                                 "descriptions on the dataset.")
        batch_arguments_add(parser, chunk_size=SIMILARITY_CHUNK_SIZE, unit="generation")

    def handle(self, *args, dataset: str, embedders: str, va_source: str | None, **options) -> None:
        try:
            families = embedder_families_parse(embedders)
        except ValueError as exc:
            raise CommandError(f"--embedders: {exc}") from exc
        try:
            row = dataset_get(key=dataset)
        except NotFound as exc:
            raise CommandError(str(exc)) from exc
        source = va_source or self._source(row.pk)
        batch = batch_start(self, dataset=row, stages=[Batch.Stage.SIMILARITY], va_source=source,
                            embedders=families, options=options)
        if batch is None or not batch_finished(batch):
            return
        batch_errors_write(self, batch, item="generation")
        parts = []
        for family in families:
            chunks = [c for c in batch.chunks.all() if c.key.startswith(f"similarity:family={family}:")]
            parts.append(f"{family} ({embedder_get(family).model_id}): {sum(c.done for c in chunks)} scored, "
                         f"{sum(c.failed for c in chunks)} failed")
        self.stdout.write("; ".join(parts) + f" [{row.name}, batch {batch.pk} {batch.status}]")

    def _source(self, dataset_id: int) -> str:
        sources = sorted(set(Generation.objects.filter(va_estimate__sample__dataset_id=dataset_id, task="describe")
                             .values_list("va_estimate__source", flat=True)))
        if len(sources) > 1:
            raise CommandError(f"descriptions on this dataset come from VA sources {', '.join(sources)}; "
                               f"choose one with --va-source")
        # With no description at all, planning says what is missing.
        return sources[0] if sources else VAEstimate.Source.EXPRESSION
