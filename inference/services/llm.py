"""LLM stage: one generation per (VA estimate, LLM config, prompt version), cached by that key.

generation_run        one item: render the prompt, call the backend with retries/backoff under the
                      config's rate limit, parse strictly, upsert the Generation row.
generations_run_many  a chunk: the model calls in a pool of threads (they wait on the network, so a
                      worker process runs many at once; only the calling thread uses the database);
                      never raises for one bad item.

Cache rule: a row in any final state (ok, unparseable, flagged) is returned without calling the model
again — the model did answer, and re-asking at temperature 0 would only cost money; an `error` row
(the call never produced an answer) is retried.
"""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, replace
from typing import Any

from inference.llm import Backend, LLMError, LLMReply, LLMRequest, TransientLLMError, backend_for
from inference.llm.parsing import categorization_parse, description_check
from inference.llm.prompts import (
    PROMPT_DEFAULTS,
    answer_schema,
    prompt_labels,
    prompt_render,
    prompt_text_check,
)
from inference.llm.ratelimit import backoff_delay, rate_limiter_for
from inference.models import Generation, LLMConfig, PromptTemplate, VAEstimate
from inference.text import storable_text

logger = logging.getLogger(__name__)

# Retry timing, overridable per config in LLMConfig.extra (tests and fast local servers use tiny values).
RETRY_BASE_SECONDS = 1.0
RETRY_MAX_SECONDS = 30.0
MAX_CONCURRENCY = 256


class GenerationInvalid(ValueError):
    """The request cannot run: unknown id, a prompt that cannot be rendered, bad arguments."""


class GenerationSkipped(ValueError):
    """The VA estimate has no valence/arousal to give the model (no face found, VA error)."""


# --- defaults -------------------------------------------------------------------------------------


def prompt_defaults_ensure() -> list[PromptTemplate]:
    """The newest version of each default prompt, creating version 1 where the name is new.

    Idempotent, and never writes over an existing row: an edited prompt is a new version (prompt_revise),
    and generations keep pointing at the exact text they were produced with."""
    prompts = []
    for default in PROMPT_DEFAULTS:
        latest = PromptTemplate.objects.filter(task=default.task, name=default.name).order_by("-version").first()
        if latest is None:
            latest, _ = PromptTemplate.objects.get_or_create(
                task=default.task, name=default.name, version=1,
                defaults={"text": default.text, "system_text": default.system_text, "va_format": default.va_format,
                          "multilabel": default.multilabel},
            )
        prompts.append(latest)
    return prompts


def llm_config_defaults_ensure() -> list[LLMConfig]:
    """`smollm2-gguf` (the offline SmolLM2 model, in-process) and `lexicon-warriner` (non-LLM baseline
    on WORD_NORMS). Existing rows are left as the operator set them."""
    defaults = [
        ("smollm2-gguf", {"backend": LLMConfig.Backend.GGUF, "model": "", "temperature": 0.0, "max_tokens": 96,
                          "seed": 0, "timeout_seconds": 120, "extra": {"n_ctx": 2048}}),
        ("lexicon-warriner", {"backend": LLMConfig.Backend.LEXICON, "model": "", "max_tokens": 0,
                              "max_retries": 0}),
    ]
    return [LLMConfig.objects.get_or_create(name=name, defaults=fields)[0] for name, fields in defaults]


def prompt_revise(*, prompt: PromptTemplate, text: str, system_text: str | None = None) -> PromptTemplate:
    """Edit a prompt = a new version row with the next number; the old row stays as it was."""
    prompt_text_check(task=prompt.task, text=text)
    latest = PromptTemplate.objects.filter(task=prompt.task, name=prompt.name).order_by("-version").first()
    return PromptTemplate.objects.create(
        task=prompt.task, name=prompt.name, version=latest.version + 1, text=text,
        system_text=prompt.system_text if system_text is None else system_text, va_format=prompt.va_format,
        multilabel=prompt.multilabel,
    )


# --- one generation -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CallOutcome:
    reply: LLMReply | None
    attempts: int
    latency_ms: float | None
    error: str


def _extra_float(config: LLMConfig, key: str, default: float) -> float:
    try:
        return float((config.extra or {}).get(key, default))
    except (TypeError, ValueError):
        return default


def _complete_with_retries(*, backend: Backend, config: LLMConfig, request: LLMRequest,
                           sleep: Callable[[float], None] = time.sleep) -> CallOutcome:
    limiter = rate_limiter_for(config_id=config.pk, per_minute=config.rate_limit_per_minute)
    base_s = _extra_float(config, "retry_base_seconds", RETRY_BASE_SECONDS)
    cap_s = _extra_float(config, "retry_max_seconds", RETRY_MAX_SECONDS)
    history: list[str] = []
    attempts = 0
    while True:
        attempts += 1
        limiter.acquire()  # every attempt counts against the provider's limit, retries included
        started = time.perf_counter()
        try:
            reply = backend.complete(request)
        except TransientLLMError as exc:
            history.append(f"attempt {attempts}: {exc}")
            if attempts > config.max_retries:
                return CallOutcome(None, attempts, None, f"gave up after {attempts} attempt(s); " + "; ".join(history))
            sleep(backoff_delay(attempt=attempts, base_s=base_s, cap_s=cap_s, retry_after=exc.retry_after))
            continue
        except LLMError as exc:
            history.append(f"attempt {attempts}: {exc}")
            return CallOutcome(None, attempts, None, "; ".join(history))
        except Exception as exc:  # noqa: BLE001 - a backend bug must become an error row, not kill the chunk
            logger.exception("LLM backend %s raised unexpectedly", config.name)
            history.append(f"attempt {attempts}: {type(exc).__name__}: {exc}")
            return CallOutcome(None, attempts, None, "; ".join(history))
        # On a successful row the error field keeps the transient failures that were retried.
        return CallOutcome(reply, attempts, (time.perf_counter() - started) * 1000, "; ".join(history))


def _load(model: type, pk: Any, what: str) -> Any:
    if isinstance(pk, bool) or not isinstance(pk, int):
        raise GenerationInvalid(f"{what} id must be an integer, got {pk!r}")
    row = model.objects.filter(pk=pk).first()
    if row is None:
        raise GenerationInvalid(f"{what} {pk} does not exist")
    return row


def _usable_va(va: VAEstimate) -> tuple[float, float]:
    if va.status != VAEstimate.Status.OK or va.valence is None or va.arousal is None:
        raise GenerationSkipped(f"VA estimate {va.pk} has no valence/arousal (status {va.status})")
    valence, arousal = float(va.valence), float(va.arousal)
    if not (math.isfinite(valence) and math.isfinite(arousal)):
        raise GenerationInvalid(f"VA estimate {va.pk} holds a non-finite value (V={valence}, A={arousal})")
    return valence, arousal


def generation_request(*, va: VAEstimate, config: LLMConfig, prompt: PromptTemplate) -> LLMRequest:
    valence, arousal = _usable_va(va)
    categorize = prompt.task == PromptTemplate.Task.CATEGORIZE
    labels = prompt_labels(multilabel=prompt.multilabel) if categorize else []
    try:
        text = prompt_render(text=prompt.text, task=prompt.task, va_format=prompt.va_format, valence=valence,
                             arousal=arousal, labels=labels)
    except ValueError as exc:
        raise GenerationInvalid(f"prompt {prompt}: {exc}") from exc
    return LLMRequest(
        system=prompt.system_text, prompt=text, task=prompt.task, valence=valence, arousal=arousal, labels=labels,
        multilabel=prompt.multilabel,
        schema=answer_schema(labels=labels, multilabel=prompt.multilabel) if categorize else None,
        temperature=config.temperature, max_tokens=config.max_tokens, seed=config.seed,
    )


def _outcome_fields(*, request: LLMRequest, outcome: CallOutcome) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "task": request.task, "prompt_text": request.prompt, "attempts": outcome.attempts,
        "latency_ms": outcome.latency_ms, "error": outcome.error, "raw_text": "", "text": "", "labels": [],
        "flag_reason": "", "prompt_tokens": None, "completion_tokens": None,
    }
    reply = outcome.reply
    if reply is None:
        return {**fields, "status": Generation.Status.ERROR}
    # A NUL byte or a lone surrogate cannot be stored (PostgreSQL, UTF-8): the row would be lost, so
    # each becomes U+FFFD before anything reads the answer.
    reply = replace(reply, text=storable_text(reply.text))
    fields.update(raw_text=reply.text, prompt_tokens=reply.prompt_tokens, completion_tokens=reply.completion_tokens)
    if request.task == PromptTemplate.Task.CATEGORIZE:
        parsed = (categorization_parse(raw=reply.text, labels=request.labels, multilabel=request.multilabel)
                  if not reply.refusal else None)
        if parsed is None:
            return {**fields, "status": Generation.Status.UNPARSEABLE, "flag_reason": "the API marked a refusal"}
        return {**fields, "status": parsed.status, "labels": parsed.labels, "flag_reason": parsed.reason[:300]}
    checked = description_check(raw=reply.text, refusal=reply.refusal)
    return {**fields, "status": checked.status, "text": checked.text, "flag_reason": checked.reason[:300]}


def _store(*, va: VAEstimate, config: LLMConfig, prompt: PromptTemplate, request: LLMRequest,
           outcome: CallOutcome) -> Generation:
    # Written after the call, outside any transaction: a slow model must not hold a database lock.
    generation, _ = Generation.objects.update_or_create(
        va_estimate=va, config=config, prompt=prompt, defaults=_outcome_fields(request=request, outcome=outcome),
    )
    return generation


# Every column an upsert rewrites (created_at keeps the first time the row was made).
_UPSERT_FIELDS = ["task", "prompt_text", "raw_text", "text", "labels", "status", "flag_reason", "error",
                  "prompt_tokens", "completion_tokens", "latency_ms", "attempts", "updated_at"]
STORE_BATCH = 32
STORE_INTERVAL_S = 0.05


def _store_many(*, config: LLMConfig, prompt: PromptTemplate,
                rows: list[tuple[VAEstimate, LLMRequest, CallOutcome]]) -> list[Generation]:
    """Upsert finished calls in one INSERT … ON CONFLICT DO UPDATE on the natural key.

    With many calls in flight the single writing thread is the bottleneck: one statement for a group of
    answers instead of a SELECT-then-write per answer keeps it ahead of the network."""
    objs = [Generation(va_estimate=va, config=config, prompt=prompt, **_outcome_fields(request=request,
                                                                                       outcome=outcome))
            for va, request, outcome in rows]
    Generation.objects.bulk_create(objs, update_conflicts=True,
                                   unique_fields=["va_estimate", "config", "prompt"], update_fields=_UPSERT_FIELDS)
    return objs


def generation_run(*, va_estimate_id: int, config_id: int, prompt_id: int) -> Generation:
    """Generate (or reuse) the answer for one VA estimate. Raises GenerationInvalid / GenerationSkipped /
    ImproperlyConfigured (missing model) before any row is written; a failed call is an `error` row."""
    va = _load(VAEstimate, va_estimate_id, "VA estimate")
    config = _load(LLMConfig, config_id, "LLM config")
    prompt = _load(PromptTemplate, prompt_id, "prompt")
    request = generation_request(va=va, config=config, prompt=prompt)
    cached = Generation.objects.filter(va_estimate=va, config=config, prompt=prompt).first()
    if cached is not None and cached.status != Generation.Status.ERROR:
        return cached
    outcome = _complete_with_retries(backend=backend_for(config), config=config, request=request)
    return _store(va=va, config=config, prompt=prompt, request=request, outcome=outcome)


# --- many -----------------------------------------------------------------------------------------


def generations_run_many(*, va_estimate_ids: list[int], config_id: int, prompt_id: int,
                         concurrency: int = 8) -> dict:
    """Run a chunk; one bad item never stops the others.

    Returns {"done": n, "failed": n, "errors": {va_estimate_id: message}, "skipped": {va_estimate_id: reason},
    "statuses": {status: n}}. Skipped estimates (no face) are neither done nor failed. A config or prompt
    that cannot work at all (unknown id, missing model file) raises: every item would fail the same way.

    Only the calling thread touches the database (reads before, upserts as calls finish); the pool threads
    make model calls and nothing else. So a chunk holds one database connection at any concurrency, and
    the rows it reads are the caller's (a transaction it is in is visible to the whole chunk).
    """
    if not isinstance(va_estimate_ids, list) or any(isinstance(i, bool) or not isinstance(i, int)
                                                    for i in va_estimate_ids):
        raise GenerationInvalid(f"va_estimate_ids must be a list of integers, got {va_estimate_ids!r}")
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or not 1 <= concurrency <= MAX_CONCURRENCY:
        raise GenerationInvalid(f"concurrency must be an integer from 1 to {MAX_CONCURRENCY}, got {concurrency!r}")
    config = _load(LLMConfig, config_id, "LLM config")
    prompt = _load(PromptTemplate, prompt_id, "prompt")
    backend = backend_for(config)  # fail fast (and once) on a missing model or a bad backend setting
    if config.backend in (LLMConfig.Backend.GGUF, LLMConfig.Backend.LEXICON):
        # CPU-bound in this process (the gguf calls are serialised anyway): threads would add nothing.
        concurrency = 1
    report: dict[str, Any] = {"done": 0, "failed": 0, "errors": {}, "skipped": {}, "statuses": {}}

    def count(va_estimate_id: int, generation: Generation) -> None:
        report["statuses"][generation.status] = report["statuses"].get(generation.status, 0) + 1
        if generation.status == Generation.Status.ERROR:
            report["failed"] += 1
            report["errors"][va_estimate_id] = generation.error or "the model call failed"
        else:
            report["done"] += 1

    ids = list(dict.fromkeys(va_estimate_ids))
    estimates = VAEstimate.objects.in_bulk(ids)
    cached = {g.va_estimate_id: g for g in Generation.objects.filter(va_estimate_id__in=ids, config=config,
                                                                       prompt=prompt)
              .exclude(status=Generation.Status.ERROR)}
    todo: list[tuple[VAEstimate, LLMRequest]] = []
    for va_estimate_id in ids:
        va = estimates.get(va_estimate_id)
        try:
            if va is None:
                raise GenerationInvalid(f"VA estimate {va_estimate_id} does not exist")
            request = generation_request(va=va, config=config, prompt=prompt)
        except GenerationSkipped as exc:
            report["skipped"][va_estimate_id] = str(exc)
            continue
        except GenerationInvalid as exc:
            report["failed"] += 1
            report["errors"][va_estimate_id] = str(exc)
            continue
        if va_estimate_id in cached:
            count(va_estimate_id, cached[va_estimate_id])
        else:
            todo.append((va, request))

    def store(va: VAEstimate, request: LLMRequest, outcome: CallOutcome) -> None:
        try:
            count(va.pk, _store(va=va, config=config, prompt=prompt, request=request, outcome=outcome))
        except Exception as exc:  # noqa: BLE001 - e.g. the VA row was deleted meanwhile; report, go on
            logger.warning("storing the generation for VA estimate %s failed: %s", va.pk, exc)
            report["failed"] += 1
            report["errors"][va.pk] = f"{type(exc).__name__}: {exc}"

    if concurrency == 1 or len(todo) <= 1:
        for va, request in todo:
            store(va, request, _complete_with_retries(backend=backend, config=config, request=request))
        return report
    pending: list[tuple[VAEstimate, LLMRequest, CallOutcome]] = []

    def flush() -> None:
        if not pending:
            return
        try:
            for (va, _, _), generation in zip(pending, _store_many(config=config, prompt=prompt, rows=pending),
                                              strict=True):
                count(va.pk, generation)
        except Exception as exc:  # noqa: BLE001 - e.g. a VA row deleted meanwhile: store one by one
            logger.warning("bulk store of %d generations failed (%s); storing them one by one", len(pending), exc)
            for va, request, outcome in pending:
                store(va, request, outcome)
        pending.clear()

    with ThreadPoolExecutor(max_workers=min(concurrency, len(todo)), thread_name_prefix="llm") as pool:
        futures = {pool.submit(_complete_with_retries, backend=backend, config=config, request=request): (va, request)
                   for va, request in todo}
        last_flush = time.monotonic()
        for future in as_completed(futures):
            va, request = futures[future]
            # _complete_with_retries turns every exception into an outcome, so result() does not raise.
            pending.append((va, request, future.result()))
            # Written in small groups as answers arrive: a crash loses at most one group of calls.
            if len(pending) >= STORE_BATCH or time.monotonic() - last_flush >= STORE_INTERVAL_S:
                flush()
                last_flush = time.monotonic()
        flush()
    return report
