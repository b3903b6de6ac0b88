from __future__ import annotations

from argparse import ArgumentParser
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from inference.models import VAEstimate
from inference.services.experiments import ExperimentInputError, experiment_run


class Command(BaseCommand):
    help = ("Run (or reuse) every stage of the study for a dataset — VA, LLM generation, similarity — and write "
            "its tables (CSV, JSON, Markdown summary, SVG plots). Safe to re-run: stored results are reused.")

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--dataset", required=True, help="Dataset name (or id).")
        parser.add_argument("--va-source", required=True, choices=VAEstimate.Source.values,
                            help="VA the LLM sees: facechannel, expression (derived) or dataset (ground truth).")
        parser.add_argument("--configs", required=True, help="Comma-separated LLM config names, e.g. smollm2-gguf,"
                                                             "lexicon-warriner.")
        parser.add_argument("--prompts", required=True,
                            help="Comma-separated prompt names (latest version of each), e.g. categorize-basic,"
                                 "categorize-basic-words,describe,describe-words.")
        parser.add_argument("--embedders", default="word,bert,sentence",
                            help="Comma-separated embedder families for the similarity stage (empty: none).")
        parser.add_argument("--out", required=True, help="Folder for the tables and plots (created if missing).")

    def handle(self, *args, dataset: str, va_source: str, configs: str, prompts: str, embedders: str, out: str,
               **options) -> None:
        out_dir = Path(out).expanduser()
        if out_dir.exists() and not out_dir.is_dir():
            raise CommandError(f"--out {out_dir} exists and is not a folder")
        log = self.stdout.write if options.get("verbosity", 1) > 0 else (lambda message: None)
        try:
            result = experiment_run(dataset=dataset, va_source=va_source, configs=configs, prompts=prompts,
                                    embedders=embedders, out_dir=out_dir, log=log)
        except (ExperimentInputError, ImproperlyConfigured) as exc:
            raise CommandError(str(exc)) from exc
        for note in result.tables["meta"]["notes"]:
            self.stderr.write(f"  note: {note}")
        self.stdout.write(f"{result.spec.dataset.name}: {len(result.tables['accuracy'])} classification rows, "
                          f"{len(result.tables['similarity'])} similarity rows, {len(result.files)} files in {out_dir}")
