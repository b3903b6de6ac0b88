from __future__ import annotations

from argparse import ArgumentParser

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from inference.embeddings import EmbedderUnavailable, embedder_families_parse, embedder_get
from inference.models import Dataset
from inference.services.similarity import (
    SIMILARITY_CHUNK_SIZE,
    SimilarityInputError,
    dataset_similarity_compute,
    similarity_pending_ids,
    similarity_queue,
)


class Command(BaseCommand):
    help = ("Cosine similarity between each generated description of a dataset and its reference "
            "descriptions, per embedder. Safe to re-run: what is already scored is reused.")

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("dataset", help="Dataset name.")
        parser.add_argument("--embedders", default="word,bert,sentence",
                            help="Comma-separated embedder families: word, bert, sentence (default: all three).")
        parser.add_argument("--chunk-size", type=int, default=SIMILARITY_CHUNK_SIZE,
                            help="Generations per chunk (one Celery message with --queue).")
        parser.add_argument("--queue", action="store_true",
                            help="Send chunks to the 'embed' Celery queue instead of computing in this process.")

    def handle(self, *args, dataset: str, embedders: str, chunk_size: int, queue: bool, **options) -> None:
        if chunk_size < 1:
            raise CommandError("--chunk-size must be at least 1")
        try:
            families = embedder_families_parse(embedders)
        except ValueError as exc:
            raise CommandError(f"--embedders: {exc}") from exc
        row = Dataset.objects.filter(name=dataset).first()
        if row is None:
            raise CommandError(f"no dataset named {dataset!r}")
        try:
            if queue:
                sent = sum(similarity_queue(generation_ids=similarity_pending_ids(dataset_id=row.pk, family=f),
                                            families=[f], chunk_size=chunk_size) for f in families)
                self.stdout.write(f"{row.name}: queued {sent} chunk(s) on the embed queue for {', '.join(families)}")
                return
            bar = tqdm(desc=f"similarity {row.name}", unit="generation", disable=options.get("verbosity", 1) == 0)
            try:
                results = dataset_similarity_compute(dataset_id=row.pk, families=families, chunk_size=chunk_size,
                                                     progress=bar.update)
            finally:
                bar.close()
        except (EmbedderUnavailable, SimilarityInputError) as exc:
            raise CommandError(str(exc)) from exc
        for family, result in results.items():
            for gid, error in list(result["errors"].items())[:20]:
                self.stderr.write(f"  {family} generation {gid}: {error}")
        self.stdout.write("; ".join(
            f"{family} ({embedder_get(family).model_id}): {r['done']} scored, {r['failed']} failed"
            for family, r in results.items()) + f" [{row.name}]")
