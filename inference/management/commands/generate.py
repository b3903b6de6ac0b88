from __future__ import annotations

from argparse import ArgumentParser

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Count

from inference.management.batch_cli import (
    batch_arguments_add,
    batch_errors_write,
    batch_finished,
    batch_start,
)
from inference.models import Batch, Dataset, Generation, PromptTemplate, VAEstimate
from inference.selectors import (
    NotFound,
    dataset_get,
    llm_configs_get,
    prompt_get,
    va_estimates_current,
    va_estimates_usable,
)

DEFAULT_PROMPTS = {"categorize": "categorize-basic", "describe": "describe"}


class Command(BaseCommand):
    help = ("Generate LLM answers (categorize or describe) for every usable VA estimate of a dataset that has "
            "none yet (a batch with the generate stage). The 'llm' Celery workers run it, or this process with "
            "--inline. Safe to re-run: answers are cached by (VA estimate, config, prompt version).")

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("dataset", help="Dataset name (see import_dataset).")
        parser.add_argument("--config", required=True, help="LLM config name (see llm_defaults / the admin).")
        parser.add_argument("--task", required=True, choices=PromptTemplate.Task.values, help="categorize or describe.")
        parser.add_argument("--prompt", default=None,
                            help="Prompt: name, name@version or task/name@version (newest version when omitted). "
                                 "Default: categorize-basic / categorize-emotic by the dataset's label set, "
                                 "or describe.")
        parser.add_argument("--va-source", default=None, choices=VAEstimate.Source.values,
                            help="Which VA estimates to use. Default: the only source the dataset has.")
        parser.add_argument("--concurrency", type=int, default=8,
                            help="Concurrent model calls per chunk (network backends; gguf and lexicon run one at a "
                                 "time). Default 8.")
        batch_arguments_add(parser, chunk_size=32, unit="VA estimate")

    def handle(self, *args, dataset: str, config: str, task: str, prompt: str | None, va_source: str | None,
               **options) -> None:
        try:
            data = dataset_get(key=dataset)
            [llm_config] = llm_configs_get(names=[config])
        except NotFound as exc:
            raise CommandError(str(exc)) from exc
        template = self._prompt(task=task, spec=prompt, dataset=data)
        source = self._source(dataset=data, va_source=va_source)
        current = va_estimates_current(dataset_id=data.pk, source=source)
        usable = va_estimates_usable(dataset_id=data.pk, source=source)
        skipped = current.count() - usable.count()
        if not usable.exists():
            raise CommandError(f"dataset {data.name!r} has no {source!r} VA estimates with valence/arousal "
                               f"({skipped} without); run extract_va first")
        label = f"{llm_config.name} {template.task}/{template.name}@{template.version}"
        batch = batch_start(self, dataset=data, stages=[Batch.Stage.GENERATE], va_source=source, configs=[llm_config],
                            prompts=[template], options=options, concurrency=options["concurrency"])
        if batch is None or not batch_finished(batch):
            return
        batch_errors_write(self, batch, item="VA estimate")
        statuses = dict(Generation.objects.filter(config=llm_config, prompt=template, va_estimate__in=usable)
                        .values_list("status").annotate(n=Count("id")).values_list("status", "n"))
        summary = ", ".join(f"{count} {status}" for status, count in sorted(statuses.items())) or "none"
        self.stdout.write(f"{data.name} × {label}: {batch.done} done, {batch.failed} failed, "
                          f"{skipped} skipped without VA ({summary}) (batch {batch.pk} {batch.status})")

    def _prompt(self, *, task: str, spec: str | None, dataset: Dataset) -> PromptTemplate:
        if spec is None:
            spec = "categorize-emotic" if task == "categorize" and dataset.multilabel else DEFAULT_PROMPTS[task]
            spec = f"{task}/{spec}"
            if not PromptTemplate.objects.filter(task=task, name=spec.split("/")[1]).exists():
                raise CommandError(f"default prompt {spec} does not exist yet; run `manage.py llm_defaults`")
        try:
            template = prompt_get(spec=spec)
        except NotFound as exc:
            raise CommandError(str(exc)) from exc
        if template.task != task:
            raise CommandError(f"prompt {template.name}@{template.version} is a {template.task} prompt, "
                               f"not {task}")
        if task == "categorize" and template.multilabel != dataset.multilabel:
            kinds = {True: "Emotic (multi-label)", False: "basic (single-label)"}
            raise CommandError(f"prompt {template.name} lists the {kinds[template.multilabel]} labels but dataset "
                               f"{dataset.name} uses {kinds[dataset.multilabel]} labels")
        return template

    def _source(self, *, dataset: Dataset, va_source: str | None) -> str:
        if va_source is not None:
            return va_source
        sources = sorted(set(VAEstimate.objects.filter(sample__dataset=dataset).values_list("source", flat=True)))
        if not sources:
            raise CommandError(f"dataset {dataset.name!r} has no VA estimates; run extract_va first")
        if len(sources) > 1:
            raise CommandError(f"dataset {dataset.name!r} has VA estimates from {', '.join(sources)}; "
                               f"choose one with --va-source")
        return sources[0]
