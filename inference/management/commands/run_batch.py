from __future__ import annotations

import time
from argparse import ArgumentParser

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from inference.models import Batch, Dataset, LLMConfig, PromptTemplate
from inference.services.batches import (
    EMBEDDER_FAMILIES,
    STAGE_ORDER,
    VA_SOURCES,
    BatchInvalid,
    batch_progress,
    batch_queue,
)


def _split(raw: str | None) -> list[str]:
    return [part.strip() for part in (raw or "").split(",") if part.strip()]


def prompt_resolve(spec: str) -> PromptTemplate:
    """`name`, `name@3` or `describe/name@3`; without a version, the newest one."""
    rest, _, version = spec.partition("@")
    task, _, name = rest.rpartition("/")
    prompts = PromptTemplate.objects.filter(name=name)
    if task:
        prompts = prompts.filter(task=task)
    if version:
        if not version.isdigit():
            raise CommandError(f"prompt {spec!r}: version must be a number, as in name@2")
        prompts = prompts.filter(version=int(version))
    tasks = set(prompts.values_list("task", flat=True))
    if not tasks:
        known = ", ".join(f"{p.task}/{p.name}@{p.version}" for p in PromptTemplate.objects.all()[:20]) or "none"
        raise CommandError(f"unknown prompt {spec!r} (known: {known})")
    if len(tasks) > 1:
        raise CommandError(f"prompt {spec!r} exists for tasks {', '.join(sorted(tasks))}; write task/name")
    return prompts.order_by("-version").first()


class Command(BaseCommand):
    help = ("Queue a batch over a dataset: VA extraction, LLM generation, similarity (consecutive stages). "
            "Safe to re-run: results are upserted. With --wait, shows progress until it finishes.")

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--dataset", required=True, help="Dataset name (see import_dataset).")
        parser.add_argument("--stages", required=True,
                            help=f"Comma-separated consecutive stages, in order: {','.join(STAGE_ORDER)}.")
        parser.add_argument("--va-source", default="expression",
                            help=f"VA source to compute or use: {', '.join(VA_SOURCES)} (default expression).")
        parser.add_argument("--configs", default="", help="Comma-separated LLM config names (generate stage).")
        parser.add_argument("--prompts", default="",
                            help="Comma-separated prompts: name, name@version or task/name@version "
                                 "(newest version when omitted).")
        parser.add_argument("--embedders", default="",
                            help=f"Comma-separated embedder families (similarity stage): {','.join(EMBEDDER_FAMILIES)}.")
        parser.add_argument("--chunk-size", type=int, default=16, help="Items per Celery message (default 16).")
        parser.add_argument("--wait", action="store_true", help="Show progress bars until the batch finishes.")
        parser.add_argument("--poll", type=float, default=1.0, help="Seconds between progress checks (--wait).")

    def handle(self, *args, dataset: str, stages: str, va_source: str, configs: str, prompts: str,
               embedders: str, chunk_size: int, wait: bool, poll: float, **options) -> None:
        found = Dataset.objects.filter(name=dataset).first()
        if found is None:
            known = ", ".join(Dataset.objects.values_list("name", flat=True)[:20]) or "none; run import_dataset"
            raise CommandError(f"unknown dataset {dataset!r} (known: {known})")
        config_names = _split(configs)
        config_rows = {config.name: config for config in LLMConfig.objects.filter(name__in=config_names)}
        missing = [name for name in config_names if name not in config_rows]
        if missing:
            known = ", ".join(LLMConfig.objects.values_list("name", flat=True)[:20]) or "none"
            raise CommandError(f"unknown LLM config(s) {', '.join(missing)} (known: {known})")
        if poll <= 0:
            raise CommandError("--poll must be > 0")
        try:
            batch = batch_queue(
                dataset=found, stages=_split(stages), va_source=va_source,
                configs=[config_rows[name] for name in config_names],
                prompts=[prompt_resolve(spec) for spec in _split(prompts)],
                embedders=_split(embedders), chunk_size=chunk_size,
            )
        except BatchInvalid as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"queued batch {batch.pk}: {' → '.join(batch.stages)} over {found.name}")
        if wait:
            batch = self._wait(batch, poll, quiet=options.get("verbosity", 1) == 0)
        else:
            batch.refresh_from_db()
        self.stdout.write(f"batch {batch.pk} {batch.status}: {batch.done} done, {batch.failed} failed, "
                          f"{batch.total} planned")
        if wait and batch.status != Batch.Status.SUCCEEDED:
            raise CommandError(batch.error or f"batch {batch.pk} {batch.status}")

    def _wait(self, batch: Batch, poll: float, quiet: bool) -> Batch:
        bars: dict[str, tqdm] = {}
        try:
            while True:
                batch.refresh_from_db()
                progress = batch_progress(batch=batch)
                for stage in progress["stages"]:
                    if not stage["planned"]:
                        continue
                    bar = bars.get(stage["stage"])
                    if bar is None:
                        bar = bars[stage["stage"]] = tqdm(total=stage["total"], desc=stage["stage"], unit="item",
                                                          disable=quiet, position=len(bars))
                    bar.total = stage["total"]  # grows when retried items feed a later stage
                    bar.n = stage["done"] + stage["failed"]
                    bar.set_postfix(failed=stage["failed"])
                    bar.refresh()
                if progress["finished"]:
                    return batch
                time.sleep(poll)
        except KeyboardInterrupt:
            self.stderr.write(f"stopped watching; batch {batch.pk} keeps running (cancel it from its page)")
            raise
        finally:
            for bar in bars.values():
                bar.close()
