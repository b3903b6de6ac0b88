"""The study's experiment: run (or reuse) every stage for a dataset, then build and write its tables.

`experiment_run` runs the stages (VA → generation → similarity) as a Batch in this process, computing
only what is missing, so a re-run makes no new rows. `experiment_tables_build` reads the stored rows and hands them to the pure
table builders in `inference.tables` (the study reports reuse it); `experiment_tables_write` turns its
result into CSV, JSON, a Markdown summary and SVG plots through `inference.output`.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from django.db.models import Count
from django.utils.text import slugify

from inference import tables as T
from inference.embeddings import embedder_families_parse
from inference.models import Batch, Dataset, Generation, LLMConfig, PromptTemplate, VAEstimate
from inference.output import csv_file_write, figure_save, markdown_table, pyplot
from inference.selectors import (
    NotFound,
    dataset_get,
    llm_configs_get,
    names_split,
    prompt_get,
    va_estimates_current,
    va_model_version_current,
)
from inference.services.batches import (
    BatchInvalid,
    batch_queue,
    batch_run_inline,
    batch_stages_ready,
    batch_stages_todo,
)
from inference.services.llm import llm_config_defaults_ensure, prompt_defaults_ensure
from inference.services.similarity import similarity_by_generation
from inference.stages import PlanInput

VA_CHUNK_SIZE = 32


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
    names = names_split(raw)
    if not names:
        raise ExperimentInputError(f"no {what} given")
    return names


def _configs_resolve(names: list[str]) -> list[LLMConfig]:
    try:
        return llm_configs_get(names=names)
    except NotFound:
        # The default configs may simply not be created yet on a fresh database.
        llm_config_defaults_ensure()
    try:
        return llm_configs_get(names=names)
    except NotFound as exc:
        raise ExperimentInputError(str(exc)) from exc


def _prompt_latest(name: str) -> PromptTemplate:
    try:
        return prompt_get(spec=name)
    except NotFound:
        prompt_defaults_ensure()
    try:
        return prompt_get(spec=name)
    except NotFound as exc:
        raise ExperimentInputError(str(exc)) from exc


def _prompts_resolve(names: list[str], dataset: Dataset) -> list[PromptTemplate]:
    prompts = []
    for name in names:
        prompt = _prompt_latest(name)
        if prompt.task == PromptTemplate.Task.CATEGORIZE and prompt.multilabel != dataset.multilabel:
            kind = "multi-label" if prompt.multilabel else "single-label"
            mode = "multi-label" if dataset.multilabel else "single-label"
            raise ExperimentInputError(f"prompt {name!r} is {kind} but dataset {dataset.name!r} is {mode}")
        prompts.append(prompt)
    return prompts


def experiment_spec_resolve(*, dataset: str | int, va_source: str, configs: str | Sequence[str],
                            prompts: str | Sequence[str], embedders: str | Sequence[str]) -> ExperimentSpec:
    try:
        row = dataset_get(key=dataset)
    except NotFound as exc:
        raise ExperimentInputError(str(exc)) from exc
    if va_source not in VAEstimate.Source.values:
        raise ExperimentInputError(f"unknown VA source {va_source!r} (choose {', '.join(VAEstimate.Source.values)})")
    try:
        families = embedder_families_parse(embedders) if embedders else []
    except ValueError as exc:
        raise ExperimentInputError(str(exc)) from exc
    return ExperimentSpec(dataset=row, va_source=va_source, configs=_configs_resolve(_names(configs, "LLM config")),
                          prompts=_prompts_resolve(_names(prompts, "prompt"), row), embedders=families)


def _estimates(dataset_id: int, source: str) -> dict[int, VAEstimate]:
    """{sample_id: OK estimate} of the source's current model version."""
    qs = va_estimates_current(dataset_id=dataset_id, source=source).filter(status=VAEstimate.Status.OK)
    return {va.sample_id: va for va in qs}


# --- running the stages --------------------------------------------------------------------------

def _stage_report(batch: Batch | None, preview: dict[str, Any], stage: str) -> dict[str, Any]:
    """{"reused", "computed", "failed"} of one stage (per group for similarity), from the batch's rows or,
    for a stage that had nothing to do and was left out of the batch, from the preview."""
    plan = (batch.plan or {}).get(stage) if batch is not None else None
    chunks = list(batch.chunks.filter(stage=stage)) if batch is not None and plan is not None else []

    def counts(prefix: str, reused: int) -> dict[str, int]:
        mine = [c for c in chunks if c.key.startswith(prefix)]
        return {"reused": reused, "computed": sum(c.done for c in mine), "failed": sum(c.failed for c in mine)}

    if stage == Batch.Stage.SIMILARITY:
        groups = plan["groups"] if plan is not None else {k: g["reused"] for k, g in preview["groups"].items()}
        return {key.removeprefix("family="): counts(f"{stage}:{key}:", reused) for key, reused in groups.items()}
    return counts(f"{stage}:", plan["reused"] if plan is not None else preview["reused"])


def experiment_run(*, dataset: str | int, va_source: str, configs: str | Sequence[str],
                   prompts: str | Sequence[str], embedders: str | Sequence[str], out_dir: str | Path,
                   log: Callable[[str], None] | None = None, created_by: Any = None) -> ExperimentResult:
    """Run (or reuse) VA, generation and similarity for the spec as one inline Batch, then write the
    tables to `out_dir`.

    Stages with nothing to do at the start (everything already computed) are left out of the batch;
    when nothing is missing at all no batch is made."""
    log = log or (lambda message: None)
    spec = experiment_spec_resolve(dataset=dataset, va_source=va_source, configs=configs, prompts=prompts,
                                   embedders=embedders)
    if not spec.dataset.samples.exists():
        raise ExperimentInputError(f"dataset {spec.dataset.name!r} has no samples")
    stage_names = [Batch.Stage.VA, Batch.Stage.GENERATE]
    describe = [p for p in spec.prompts if p.task == PromptTemplate.Task.DESCRIBE]
    if spec.embedders and describe:
        stage_names.append(Batch.Stage.SIMILARITY)
    plan_input = PlanInput(dataset_id=spec.dataset.pk, va_source=spec.va_source,
                           config_ids=[c.pk for c in spec.configs], prompt_ids=[p.pk for p in spec.prompts],
                           embedders=spec.embedders)
    try:
        batch_stages_ready(stages=list(stage_names), spec=plan_input)
    except BatchInvalid as exc:
        raise ExperimentInputError(str(exc)) from exc
    todo, previews = batch_stages_todo(stages=[str(name) for name in stage_names], spec=plan_input)
    if todo and not previews[todo[0]]["items"]:
        # The next stage lacks its input (no usable VA, no references): the tables say so in their notes.
        todo = []
    batch = None
    if todo:
        try:
            batch = batch_queue(dataset=spec.dataset, stages=todo, va_source=spec.va_source,
                                configs=spec.configs, prompts=spec.prompts, embedders=spec.embedders,
                                chunk_size=VA_CHUNK_SIZE, created_by=created_by, inline=True)
        except BatchInvalid as exc:
            raise ExperimentInputError(str(exc)) from exc
        log(f"batch {batch.pk}: {' → '.join(batch.stages)} (in this process)")
        batch = batch_run_inline(batch_id=batch.pk)
    stages: dict[str, Any] = {"batch": batch.pk if batch else None}
    va = stages["va"] = _stage_report(batch, previews[Batch.Stage.VA], Batch.Stage.VA)
    log(f"VA ({spec.va_source}): {va['reused']} reused, {va['computed']} computed, {va['failed']} failed")
    gen = stages["generate"] = _stage_report(batch, previews[Batch.Stage.GENERATE], Batch.Stage.GENERATE)
    log(f"generation: {gen['reused']} reused, {gen['computed']} computed, {gen['failed']} failed")
    if Batch.Stage.SIMILARITY not in stage_names:
        stages["similarity"] = {"skipped": "no embedders or no describe prompt"}
    else:
        planned = (batch.plan or {}).get(Batch.Stage.SIMILARITY) if batch is not None else None
        plan = planned or previews[Batch.Stage.SIMILARITY]
        note = plan["note"]
        if note and not plan["reused"]:  # nothing to do for lack of input, not because all is scored
            log(f"similarity skipped: {note}")
            stages["similarity"] = {"skipped": note}
        else:
            stages["similarity"] = _stage_report(batch, previews[Batch.Stage.SIMILARITY], Batch.Stage.SIMILARITY)
            for family, part in stages["similarity"].items():
                log(f"similarity ({family}): {part['reused']} reused, {part['computed']} computed, "
                    f"{part['failed']} failed")
    tables = experiment_tables_build(dataset_id=spec.dataset.pk, va_source=spec.va_source,
                                     config_ids=[c.pk for c in spec.configs], prompt_ids=[p.pk for p in spec.prompts],
                                     embedders=spec.embedders)
    tables["meta"]["stages"] = stages
    try:
        files = experiment_tables_write(tables=tables, out_dir=Path(out_dir))
    except OSError as exc:  # an unwritable --out: say so; every result is stored and a re-run reuses it
        raise ExperimentInputError(f"cannot write the tables to {out_dir}: {exc.strerror or exc}; every computed "
                                   "result is stored, so a re-run with another --out reuses it") from exc
    return ExperimentResult(spec=spec, stages=stages, tables=tables, files=files)


# --- reads: stored rows → the plain records the table builders take ------------------------------

def _config_info(config: LLMConfig) -> T.ConfigInfo:
    return T.ConfigInfo(id=config.pk, name=config.name, backend=config.backend)


def _prompt_info(prompt: PromptTemplate) -> T.PromptInfo:
    return T.PromptInfo(id=prompt.pk, name=prompt.name, version=prompt.version, task=prompt.task,
                        va_format=prompt.va_format, multilabel=prompt.multilabel)


def _answers(estimates: dict[int, VAEstimate], configs: list[LLMConfig],
             prompts: list[PromptTemplate]) -> list[T.Answers]:
    out = []
    for config in configs:
        for prompt in (p for p in prompts if p.task == PromptTemplate.Task.CATEGORIZE):
            gens = Generation.objects.filter(config=config, prompt=prompt, status=Generation.Status.OK,
                                             va_estimate__in=list(estimates.values())).select_related("va_estimate")
            out.append(T.Answers(config=_config_info(config), prompt=_prompt_info(prompt),
                                 by_sample={g.va_estimate.sample_id: list(g.labels) for g in gens}))
    return out


def _generation_scores(estimates: dict[int, VAEstimate], configs: list[LLMConfig],
                       prompts: list[PromptTemplate]) -> T.Scores:
    gens = Generation.objects.filter(va_estimate__in=list(estimates.values()), config__in=configs,
                                     prompt__in=[p for p in prompts if p.task == PromptTemplate.Task.DESCRIBE])
    meta = {g.pk: (g.config_id, g.prompt_id, g.va_estimate.sample_id) for g in gens.select_related("va_estimate")}
    scores: T.Scores = {}
    for row in similarity_by_generation(generation_ids=list(meta)):
        config_id, prompt_id, sample_id = meta[row["generation_id"]]
        key = (config_id, prompt_id, row["embedder_family"], row["embedder_model"])
        scores.setdefault(key, {})[sample_id] = row
    return scores


def _va_points(dataset: Dataset, source: str) -> tuple[str | None, dict[int, tuple[float, float]]]:
    if source == VAEstimate.Source.DATASET:
        # Ground truth lives on the sample; VAEstimate rows of this source only copy it.
        points = {s.pk: (s.gt_valence, s.gt_arousal) for s in dataset.samples.all()
                  if s.gt_valence is not None and s.gt_arousal is not None}
        return ("dataset" if points else None), points
    sha = va_model_version_current(dataset_id=dataset.pk, source=source)
    points = {sid: (va.valence, va.arousal) for sid, va in _estimates(dataset.pk, source).items()
              if va.valence is not None and va.arousal is not None}
    return sha, points


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
    sha = va_model_version_current(dataset_id=dataset.pk, source=va_source)
    estimates = _estimates(dataset.pk, va_source)
    space = T.LabelSpace(labels=list(dataset.label_set), multilabel=dataset.multilabel)
    truth = {s.pk: t for s in dataset.samples.order_by("pk")
             if (t := T.label_truth(s.labels, space)) is not None}
    expression = _estimates(dataset.pk, VAEstimate.Source.EXPRESSION)
    answers = _answers(estimates, configs, prompts)
    classification = T.classification_tables(
        space=space, truth=truth, answers=answers, va_source=va_source,
        expression={sid: str(va.details.get("predicted_label", "")) for sid, va in expression.items()},
        expression_version=va_model_version_current(dataset_id=dataset.pk, source=VAEstimate.Source.EXPRESSION))
    scores = _generation_scores(estimates, configs, prompts)
    config_infos, prompt_infos = [_config_info(c) for c in configs], [_prompt_info(p) for p in prompts]
    similarity = T.similarity_table(scores=scores, configs=config_infos, prompts=prompt_infos,
                                    embedders=list(embedders or []))
    va_points = {source: _va_points(dataset, source) for source in VAEstimate.Source.values}
    va_rows = T.va_sources_table(points=va_points)
    va_points = {source: points for source, (_, points) in va_points.items() if points}
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
            "confusion": classification["confusion"], "paired_systems": classification["paired_systems"],
            "similarity": similarity,
            "similarity_paired": T.similarity_paired_table(scores=scores, configs=config_infos, prompts=prompt_infos),
            "prompt_ablation": T.ablation_table(accuracy_rows=classification["accuracy"], scores=scores,
                                                configs=config_infos, prompts=prompt_infos,
                                                multilabel=dataset.multilabel, truth=truth, answers=answers,
                                                space=space),
            "va_sources": va_rows, "va_points": {k: {str(s): list(v) for s, v in p.items()} for k, p in va_points.items()}}


# --- writing ---------------------------------------------------------------------------------------

CSV_TABLES = ("accuracy", "paired_systems", "per_emotion", "similarity", "similarity_paired", "prompt_ablation",
              "va_sources")


def _confusion_rows(confusions: list[dict]) -> list[dict]:
    return [{"system": c["system"], "prompt": c["prompt"], "true": true, "predicted": "(no answer)" if pred is None
             else pred, "count": c["matrix"][i][j]}
            for c in confusions for i, true in enumerate(c["labels"]) for j, pred in enumerate(c["columns"])]


def _plots(tables: dict[str, Any], folder: Path) -> list[Path]:
    plt = pyplot()
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def save(fig: Any, name: str) -> None:
        written.append(figure_save(fig, folder / name))

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
    metric_cols = (["exact_match", "exact_match_ci_low", "exact_match_ci_high", "jaccard", "micro_f1", "macro_f1"]
                   if meta["multilabel"]
                   else ["accuracy", "accuracy_ci_low", "accuracy_ci_high", "macro_f1", "chance", "majority_accuracy"])
    lines += ["## Classification per system", "",
              "No answer (no face, unparseable) counts as wrong; every system is scored on the same samples. "
              "Intervals: Wilson 95 %. Macro-F1 averages the prompt's full label set (a class never seen "
              "scores 0, as scikit-learn). Baselines: " + ("majority label set, most frequent label, and chance "
              "at each label's prevalence." if meta["multilabel"] else "majority class and uniform chance."), "",
              markdown_table(tables["accuracy"], ["system", "prompt", "va_source", "n", "n_answered", *metric_cols])]
    if tables["paired_systems"]:
        lines += ["## Systems compared on the same samples", "",
                  "Difference with the Bonett-Price paired 95 % interval; McNemar's exact test, Holm-corrected.", "",
                  markdown_table(tables["paired_systems"], ["system_a", "system_b", "metric", "n", "a_only_right",
                                                            "b_only_right", "delta_a_minus_b", "delta_ci_low",
                                                            "delta_ci_high", "p_mcnemar", "p_holm"])]
    if tables["per_emotion"]:
        lines += ["## Per emotion", "",
                  markdown_table(tables["per_emotion"], ["system", "prompt", "label", "precision", "recall", "f1",
                                                    "support"])]
    lines += ["## Similarity to reference descriptions (per generation: mean cosine over references)", "",
              markdown_table(tables["similarity"], ["system", "prompt", "embedder", "embedder_model", "n_scored", "mean",
                                               "sd", "ci_low", "ci_high", "mean_of_max", "undefined_pairs"])]
    if tables["similarity_paired"]:
        lines += ["## Similarity: systems compared on their common samples", "",
                  "Paired difference of per-sample mean cosine, t interval; Holm over all rows.", "",
                  markdown_table(tables["similarity_paired"], ["embedder", "system_a", "system_b", "n_common",
                                                               "mean_a", "mean_b", "delta_a_minus_b", "delta_ci_low",
                                                               "delta_ci_high", "p", "p_holm"])]
    lines += ["## Prompt ablation: VA as numbers vs words", "",
              "Both means and the difference on the same paired samples.", "",
              markdown_table(tables["prompt_ablation"], ["config", "task", "metric", "n", "numbers", "words",
                                                    "delta_words_minus_numbers", "delta_ci_low", "delta_ci_high",
                                                    "p", "test"])]
    lines += ["## VA sources compared", "",
              "CCC: Lin's concordance correlation with a 95 % interval over samples (Fisher's z, jackknife SE, "
              "t(n - 1)).", "",
              markdown_table(tables["va_sources"], ["source", "source_version", "reference", "n", "mae_valence",
                                               "mae_arousal", "pearson_valence", "pearson_arousal", "ccc_valence",
                                               "ccc_valence_ci_low", "ccc_valence_ci_high", "ccc_arousal",
                                               "ccc_arousal_ci_low", "ccc_arousal_ci_high"])]
    lines += ["## Plots", ""] + [f"![{p.stem}]({p.relative_to(out_dir)})" for p in plots] + [""]
    return "\n".join(lines)


def experiment_tables_write(*, tables: dict[str, Any], out_dir: Path) -> list[Path]:
    """CSV per table, results.json (everything, confusion matrices included), summary.md, SVG plots."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name in CSV_TABLES:
        path = out_dir / f"{name}.csv"
        written.append(csv_file_write(path=path, rows=tables[name]))
    written.append(csv_file_write(path=out_dir / "confusion.csv", rows=_confusion_rows(tables["confusion"])))
    path = out_dir / "results.json"
    path.write_text(json.dumps(tables, indent=2, default=str))
    written.append(path)
    plots = _plots(tables, out_dir / "plots")
    path = out_dir / "summary.md"
    path.write_text(_summary_markdown(tables, plots, out_dir))
    return [*written, *plots, path]
