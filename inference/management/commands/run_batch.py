from __future__ import annotations

from argparse import ArgumentParser

from django.core.management.base import BaseCommand, CommandError

from inference.management.batch_cli import batch_arguments_add, batch_start
from inference.models import Batch, Similarity, VAEstimate
from inference.selectors import NotFound, dataset_get, llm_configs_get, names_split, prompt_get
from inference.stages import STAGE_ORDER


class Command(BaseCommand):
    help = ("Queue a batch over a dataset: VA extraction, LLM generation, similarity (consecutive stages). "
            "Safe to re-run: results are upserted. With --wait, shows progress until it finishes.")

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--dataset", required=True, help="Dataset name (see import_dataset).")
        parser.add_argument("--stages", required=True,
                            help=f"Comma-separated consecutive stages, in order: {','.join(STAGE_ORDER)}.")
        parser.add_argument("--va-source", default="expression",
                            help=f"VA source to compute or use: {', '.join(VAEstimate.Source.values)} (default expression).")
        parser.add_argument("--configs", default="", help="Comma-separated LLM config names (generate stage).")
        parser.add_argument("--prompts", default="",
                            help="Comma-separated prompts: name, name@version or task/name@version "
                                 "(newest version when omitted).")
        parser.add_argument("--embedders", default="",
                            help=f"Comma-separated embedder families (similarity stage): {','.join(Similarity.Family.values)}.")
        batch_arguments_add(parser, chunk_size=16, unit="item")

    def handle(self, *args, dataset: str, stages: str, va_source: str, configs: str, prompts: str,
               embedders: str, **options) -> None:
        try:
            found = dataset_get(key=dataset)
            config_rows = llm_configs_get(names=names_split(configs))
            prompt_rows = [prompt_get(spec=spec) for spec in names_split(prompts)]
        except NotFound as exc:
            raise CommandError(str(exc)) from exc
        batch = batch_start(self, dataset=found, stages=names_split(stages), va_source=va_source, configs=config_rows,
                            prompts=prompt_rows, embedders=names_split(embedders), options=options)
        if batch is None:
            return
        self.stdout.write(f"batch {batch.pk} {batch.status}: {batch.done} done, {batch.failed} failed, "
                          f"{batch.total} planned")
        if (options["wait"] or options["inline"]) and batch.status != Batch.Status.SUCCEEDED:
            raise CommandError(batch.error or f"batch {batch.pk} {batch.status}")
