from __future__ import annotations

from argparse import ArgumentParser

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from inference.llm import LLMError
from inference.management.commands.run_batch import prompt_resolve
from inference.models import Dataset, LLMConfig, PromptTemplate, VAEstimate
from inference.services.batches import BatchInvalid, batch_queue
from inference.services.llm import GenerationInvalid, generations_run_dataset, va_estimates_for_generation

TASKS = [choice.value for choice in PromptTemplate.Task]
DEFAULT_PROMPTS = {"categorize": "categorize-basic", "describe": "describe"}


class Command(BaseCommand):
    help = ("Generate LLM answers (categorize or describe) for every usable VA estimate of a dataset. "
            "Queues a batch on the llm queue, or runs in-process with --sync (or when Celery is eager). "
            "Safe to re-run: answers are cached by (VA estimate, config, prompt version).")

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("dataset", help="Dataset name (see import_dataset).")
        parser.add_argument("--config", required=True, help="LLM config name (see llm_defaults / the admin).")
        parser.add_argument("--task", required=True, choices=TASKS, help="categorize or describe.")
        parser.add_argument("--prompt", default=None,
                            help="Prompt: name, name@version or task/name@version (newest version when omitted). "
                                 "Default: categorize-basic / categorize-emotic by the dataset's label set, "
                                 "or describe.")
        parser.add_argument("--va-source", default=None, choices=[c.value for c in VAEstimate.Source],
                            help="Which VA estimates to use. Default: the only source the dataset has.")
        parser.add_argument("--sync", action="store_true", help="Run in this process instead of queueing a batch.")
        parser.add_argument("--concurrency", type=int, default=8,
                            help="Concurrent model calls (network backends; gguf and lexicon run one at a time).")
        parser.add_argument("--chunk-size", type=int, default=32, help="VA estimates per chunk / Celery message.")

    def handle(self, *args, dataset: str, config: str, task: str, prompt: str | None, va_source: str | None,
               sync: bool, concurrency: int, chunk_size: int, **options) -> None:
        if chunk_size < 1:
            raise CommandError("--chunk-size must be at least 1")
        data = Dataset.objects.filter(name=dataset).first()
        if data is None:
            known = ", ".join(Dataset.objects.values_list("name", flat=True)[:20]) or "none"
            raise CommandError(f"unknown dataset {dataset!r} (known: {known})")
        llm_config = LLMConfig.objects.filter(name=config).first()
        if llm_config is None:
            known = ", ".join(LLMConfig.objects.values_list("name", flat=True)[:20]) or "none; run llm_defaults"
            raise CommandError(f"unknown LLM config {config!r} (known: {known})")
        template = self._prompt(task=task, spec=prompt, dataset=data)
        source = self._source(dataset=data, va_source=va_source)
        ids, skipped = va_estimates_for_generation(dataset=data, source=source)
        if not ids:
            raise CommandError(f"dataset {data.name!r} has no {source!r} VA estimates with valence/arousal "
                               f"({skipped} without); run extract_va first")
        label = f"{llm_config.name} {template.task}/{template.name}@{template.version}"
        if sync or settings.CELERY_TASK_ALWAYS_EAGER:
            self._run_here(data, llm_config, template, source, len(ids), concurrency, chunk_size, label,
                           quiet=options.get("verbosity", 1) == 0)
            return
        try:
            batch = batch_queue(dataset=data, stages=["generate"], va_source=source, configs=[llm_config],
                                prompts=[template], chunk_size=chunk_size)
        except BatchInvalid as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"queued batch {batch.pk}: {len(ids)} VA estimate(s) of {data.name} × {label} on the llm "
                          f"queue ({skipped} skipped without VA); follow it on the batch page")

    def _prompt(self, *, task: str, spec: str | None, dataset: Dataset) -> PromptTemplate:
        if spec is None:
            spec = "categorize-emotic" if task == "categorize" and dataset.multilabel else DEFAULT_PROMPTS[task]
            spec = f"{task}/{spec}"
            if not PromptTemplate.objects.filter(task=task, name=spec.split("/")[1]).exists():
                raise CommandError(f"default prompt {spec} does not exist yet; run `manage.py llm_defaults`")
        template = prompt_resolve(spec)
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

    def _run_here(self, dataset: Dataset, config: LLMConfig, prompt: PromptTemplate, source: str, total: int,
                  concurrency: int, chunk_size: int, label: str, quiet: bool) -> None:
        bar = tqdm(total=total, desc=f"generate {label}", unit="item", disable=quiet)
        try:
            report = generations_run_dataset(dataset=dataset, config=config, prompt=prompt, source=source,
                                             concurrency=concurrency, chunk_size=chunk_size, progress=bar.update)
        except (GenerationInvalid, ImproperlyConfigured, LLMError) as exc:
            raise CommandError(str(exc)) from exc
        finally:
            bar.close()
        for va_id, message in list(report["errors"].items())[:20]:
            self.stderr.write(f"  VA estimate {va_id}: {message}")
        statuses = ", ".join(f"{count} {status}" for status, count in sorted(report["statuses"].items())) or "none"
        self.stdout.write(f"{dataset.name} × {label}: {report['done']} done, {report['failed']} failed, "
                          f"{report['skipped']} skipped without VA ({statuses})")
