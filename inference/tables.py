"""The experiment's tables as pure functions over plain values (no ORM): classification per system,
per-emotion scores, confusion matrices, similarity per system × embedder, the numbers-vs-words prompt
ablation and the agreement between VA sources.

`inference.services.experiments` reads the rows and hands them here as the small records below; these
functions only compute, so each can be tested with hand-made numbers.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from inference import metrics
from inference.embeddings import embedder_note
from inference.importers.base import normalize_label

EXPRESSION_SYSTEM = "expression (vision-only)"
DATASET_SOURCE = "dataset"  # ground truth: the reference every other VA source is compared with
CATEGORIZE, DESCRIBE = "categorize", "describe"
NUMBERS, WORDS = "numbers", "words"

Truth = str | frozenset[str]


@dataclass(frozen=True)
class ConfigInfo:
    id: int
    name: str
    backend: str

    @property
    def system(self) -> str:
        return f"{self.name} ({self.backend})"


@dataclass(frozen=True)
class PromptInfo:
    id: int
    name: str
    version: int
    task: str
    va_format: str
    multilabel: bool = False

    @property
    def label(self) -> str:
        return f"{self.name} v{self.version}"


@dataclass(frozen=True)
class LabelSpace:
    labels: list[str]
    multilabel: bool


@dataclass
class Answers:
    """One LLM system's categorization answers: {sample_id: labels}, only for answers with status ok."""

    config: ConfigInfo
    prompt: PromptInfo
    by_sample: dict[int, list[str]] = field(default_factory=dict)


# {(config_id, prompt_id, family, model): {sample_id: {"mean_cosine", "max_cosine", "n_undefined"}}}
Scores = dict[tuple[int, int, str, str], dict[int, dict[str, Any]]]


def mean_sd_ci(values: Sequence[float | None]) -> dict[str, float | int | None]:
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


def label_truth(raw_labels: Sequence[object], space: LabelSpace) -> Truth | None:
    """A sample's true label (single-label: the first one in the label set) or label set."""
    labels = [m for m in (normalize_label(str(raw), space.labels) for raw in raw_labels) if m]
    if space.multilabel:
        return frozenset(labels) if labels else None
    return labels[0] if labels else None


def label_prediction(raw_labels: Sequence[object], space: LabelSpace) -> Truth | None:
    """A system's answer; single-label answers naming more than one label count as no answer."""
    matched = [m for m in (normalize_label(str(raw), space.labels) for raw in raw_labels) if m]
    if space.multilabel:
        return frozenset(matched) if matched else None
    return matched[0] if len(matched) == 1 else None


def _correct(truth: list, preds: list) -> list[bool]:
    """Per sample: the answer is right (single-label) or the exact label set (multi-label)."""
    return [p is not None and t == p for t, p in zip(truth, preds, strict=True)]


def _score_system(row: dict[str, Any], truth: list, preds: list, space: LabelSpace,
                  per_emotion: list[dict], confusions: list[dict]) -> dict[str, Any]:
    hits = sum(_correct(truth, preds))
    low, high = metrics.wilson_interval(hits, len(truth))
    if space.multilabel:
        row.update(metrics.multilabel_report(truth, preds, space.labels))
        row.update({"exact_match_ci_low": low, "exact_match_ci_high": high})
        per_class = metrics.multilabel_per_label(truth, preds, space.labels)
    else:
        report = metrics.single_label_report(truth, preds, space.labels)
        row.update({"n": report.n, "n_answered": report.n_answered, "accuracy": report.accuracy,
                    "accuracy_ci_low": low, "accuracy_ci_high": high,
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


def classification_tables(*, space: LabelSpace, truth: Mapping[int, Truth], answers: Sequence[Answers],
                          va_source: str, expression: Mapping[int, str] | None = None,
                          expression_version: str | None = None) -> dict[str, Any]:
    """Accuracy rows per system (+ expression prediction, majority and chance baselines), per-emotion
    scores and confusion matrices. `truth` holds the labelled samples, in table order."""
    samples = list(truth)
    truths = [truth[s] for s in samples]
    accuracy_rows: list[dict] = []
    per_emotion: list[dict] = []
    confusions: list[dict] = []
    correct: dict[str, list[bool]] = {}
    for system in answers:
        if system.prompt.task != CATEGORIZE:
            continue
        # Every system is scored on the same labelled samples; no answer (no face, unparseable) is wrong.
        preds = system_predictions(system, samples, space)
        row = {"system": system.config.system, "config": system.config.name, "backend": system.config.backend,
               "prompt": system.prompt.label, "va_format": system.prompt.va_format, "va_source": va_source}
        accuracy_rows.append(_score_system(row, truths, preds, space, per_emotion, confusions))
        correct[f"{row['system']} {row['prompt']}"] = _correct(truths, preds)
    if expression and not space.multilabel:
        preds = [label_prediction([expression[s]], space) if s in expression else None for s in samples]
        row = {"system": EXPRESSION_SYSTEM, "config": "", "backend": "vision",
               "prompt": "", "va_format": "", "va_source": f"expression@{(expression_version or '')[:12]}"}
        accuracy_rows.append(_score_system(row, truths, preds, space, per_emotion, confusions))
        correct[EXPRESSION_SYSTEM] = _correct(truths, preds)
    if truths and not space.multilabel:
        majority_label, majority = metrics.majority_baseline(truths)
        chance = metrics.chance_accuracy(len(space.labels))
        for system_name, value in ((f"baseline: majority ({majority_label})", majority), ("baseline: chance", chance)):
            accuracy_rows.append({"system": system_name, "config": "", "backend": "baseline", "prompt": "",
                                  "va_format": "", "va_source": "", "n": len(truths), "n_answered": len(truths),
                                  "accuracy": value, "macro_f1": None, "chance": chance, "majority_accuracy": majority})
    if truths and space.multilabel:
        for row in metrics.multilabel_baselines(truths, space.labels):
            accuracy_rows.append({"config": "", "backend": "baseline", "prompt": "", "va_format": "", "va_source": "",
                                  **row})
    return {"accuracy": accuracy_rows, "per_emotion": per_emotion, "confusion": confusions,
            "paired_systems": paired_systems_table(correct=correct,
                                                   metric="exact_match" if space.multilabel else "accuracy"),
            "labelled_samples": len(samples)}


def system_predictions(system: Answers, samples: Sequence[int], space: LabelSpace) -> list[Truth | None]:
    return [label_prediction(system.by_sample[s], space) if s in system.by_sample else None for s in samples]


def paired_systems_table(*, correct: Mapping[str, Sequence[bool]], metric: str) -> list[dict]:
    """Every pair of systems on the same labelled samples: accuracy (or exact-match) difference with the
    Bonett-Price paired interval and McNemar's exact p, Holm-corrected over the rows."""
    rows = []
    names = list(correct)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            test = metrics.mcnemar_test(correct[a], correct[b])
            rows.append({"system_a": a, "system_b": b, "metric": metric, "n": test["n"],
                         "a_only_right": test["a_only"], "b_only_right": test["b_only"],
                         "delta_a_minus_b": test["delta"], "delta_ci_low": test["ci_low"],
                         "delta_ci_high": test["ci_high"], "p_mcnemar": test["p"]})
    for row, adjusted in zip(rows, metrics.holm_adjust([r["p_mcnemar"] for r in rows]), strict=True):
        row["p_holm"] = adjusted
    return rows


def similarity_table(*, scores: Scores, configs: Sequence[ConfigInfo], prompts: Sequence[PromptInfo],
                     embedders: Sequence[str] = ()) -> list[dict]:
    """Per system × prompt × embedder checkpoint: mean, sd and 95 % CI of the per-generation mean cosine."""
    by_config = {c.id: c for c in configs}
    by_prompt = {p.id: p for p in prompts}
    rows = []
    for (config_id, prompt_id, family, model), per_sample in sorted(scores.items(), key=lambda kv: kv[0]):
        if embedders and family not in embedders:
            continue
        summary = mean_sd_ci([r["mean_cosine"] for r in per_sample.values()])
        maxima = mean_sd_ci([r["max_cosine"] for r in per_sample.values()])
        config, prompt = by_config[config_id], by_prompt[prompt_id]
        rows.append({"system": config.system, "config": config.name,
                     "prompt": prompt.label, "va_format": prompt.va_format,
                     "embedder": family, "embedder_model": model, "n_generations": len(per_sample),
                     "n_scored": summary["n"], "mean": summary["mean"], "sd": summary["sd"],
                     "ci_low": summary["ci_low"], "ci_high": summary["ci_high"], "mean_of_max": maxima["mean"],
                     "undefined_pairs": sum(r["n_undefined"] for r in per_sample.values()),
                     "note": embedder_note(family=family, model=model)})
    return rows


def ablation_pairs(prompts: Sequence[PromptInfo]) -> list[tuple[PromptInfo, PromptInfo]]:
    """(numbers prompt, words prompt) pairs: by name (`x` / `x-words`), else the only candidate."""
    pairs = []
    for words in (p for p in prompts if p.va_format == WORDS):
        candidates = [p for p in prompts if p.va_format == NUMBERS
                      and p.task == words.task and p.multilabel == words.multilabel]
        named = [p for p in candidates if f"{p.name}-words" == words.name]
        if named or len(candidates) == 1:
            pairs.append(((named or candidates)[0], words))
    return pairs


def ablation_table(*, accuracy_rows: Sequence[dict], scores: Scores, configs: Sequence[ConfigInfo],
                   prompts: Sequence[PromptInfo], multilabel: bool, truth: Mapping[int, Truth] | None = None,
                   answers: Sequence[Answers] = (), space: LabelSpace | None = None) -> list[dict]:
    """VA given as numbers vs as words: the metric under each prompt and the difference (words - numbers),
    all three on the same paired samples.

    Categorization: every labelled sample (no answer counts as wrong, as in the accuracy table), with
    McNemar's exact test and the Bonett-Price interval of the accuracy (or exact-match) difference.
    Similarity: the samples scored under both prompts; paired t interval and p over samples."""
    rows = []
    metric_names = ("exact_match", "jaccard", "micro_f1", "macro_f1") if multilabel else ("accuracy", "macro_f1")
    samples = list(truth or {})
    truths = [truth[s] for s in samples] if truth else []
    by_key = {(a.config.id, a.prompt.id): a for a in answers}
    for numbers, words in ablation_pairs(prompts):
        for config in configs:
            base = {"config": config.name, "task": numbers.task, "numbers_prompt": numbers.label,
                    "words_prompt": words.label}
            if numbers.task == CATEGORIZE:
                found = {r["prompt"]: r for r in accuracy_rows if r.get("config") == config.name}
                a, b = found.get(base["numbers_prompt"]), found.get(base["words_prompt"])
                if not (a and b):
                    continue
                test: dict[str, Any] = {}
                sys_a, sys_b = by_key.get((config.id, numbers.id)), by_key.get((config.id, words.id))
                if sys_a and sys_b and space is not None and truths:
                    # words vs numbers, so the difference reads words - numbers like the other rows.
                    test = metrics.mcnemar_test(_correct(truths, system_predictions(sys_b, samples, space)),
                                                _correct(truths, system_predictions(sys_a, samples, space)))
                for name in metric_names:
                    delta = None if a.get(name) is None or b.get(name) is None else b[name] - a[name]
                    tested = name == ("exact_match" if multilabel else "accuracy") and test
                    rows.append({**base, "metric": name, "n": a["n"], "numbers": a.get(name),
                                 "words": b.get(name), "delta_words_minus_numbers": delta,
                                 "delta_ci_low": test["ci_low"] if tested else None,
                                 "delta_ci_high": test["ci_high"] if tested else None,
                                 "p": test["p"] if tested else None,
                                 "test": "McNemar exact, Bonett-Price CI" if tested else ""})
                continue
            families = sorted({(k[2], k[3]) for k in scores if k[0] == config.id})
            for family, model in families:
                a = scores.get((config.id, numbers.id, family, model), {})
                b = scores.get((config.id, words.id, family, model), {})
                # Paired over samples: each sample's mean cosine under both prompts, and only those.
                common = [s for s in a.keys() & b.keys()
                          if a[s]["mean_cosine"] is not None and b[s]["mean_cosine"] is not None]
                if not common:
                    continue
                diff = metrics.paired_mean_difference([b[s]["mean_cosine"] - a[s]["mean_cosine"] for s in common])
                rows.append({**base, "metric": f"similarity:{family}:{model}", "n": diff["n"],
                             "numbers": float(np.mean([a[s]["mean_cosine"] for s in common])),
                             "words": float(np.mean([b[s]["mean_cosine"] for s in common])),
                             "delta_words_minus_numbers": diff["delta"], "delta_ci_low": diff["ci_low"],
                             "delta_ci_high": diff["ci_high"], "p": diff["p"], "test": "paired t over samples"})
    return rows


def similarity_paired_table(*, scores: Scores, configs: Sequence[ConfigInfo],
                            prompts: Sequence[PromptInfo]) -> list[dict]:
    """Per embedder checkpoint, every pair of systems (config x prompt) on their COMMON samples: both
    means over those samples, the paired difference with its t interval and p; Holm over all rows."""
    by_config = {c.id: c for c in configs}
    by_prompt = {p.id: p for p in prompts}
    rows = []
    checkpoints = sorted({(k[2], k[3]) for k in scores})
    for family, model in checkpoints:
        systems = sorted(k for k in scores if (k[2], k[3]) == (family, model))
        for i, key_a in enumerate(systems):
            for key_b in systems[i + 1:]:
                a, b = scores[key_a], scores[key_b]
                common = sorted(s for s in a.keys() & b.keys()
                                if a[s]["mean_cosine"] is not None and b[s]["mean_cosine"] is not None)
                if len(common) < 2:
                    continue
                diff = metrics.paired_mean_difference([a[s]["mean_cosine"] - b[s]["mean_cosine"] for s in common])
                name_a = f"{by_config[key_a[0]].system} {by_prompt[key_a[1]].label}"
                name_b = f"{by_config[key_b[0]].system} {by_prompt[key_b[1]].label}"
                rows.append({"embedder": family, "embedder_model": model, "system_a": name_a, "system_b": name_b,
                             "n_common": len(common),
                             "mean_a": float(np.mean([a[s]["mean_cosine"] for s in common])),
                             "mean_b": float(np.mean([b[s]["mean_cosine"] for s in common])),
                             "delta_a_minus_b": diff["delta"], "delta_ci_low": diff["ci_low"],
                             "delta_ci_high": diff["ci_high"], "p": diff["p"]})
    for row, adjusted in zip(rows, metrics.holm_adjust([r["p"] for r in rows]), strict=True):
        row["p_holm"] = adjusted
    return rows


def pearson(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Pearson r, or None where it is undefined (fewer than 3 points, or a constant side)."""
    if len(x) < 3 or np.std(x) == 0 or np.std(y) == 0:
        return None
    return float(stats.pearsonr(x, y).statistic)


def va_sources_table(
    *, points: Mapping[str, tuple[str | None, Mapping[int, tuple[float, float]]]],
) -> list[dict]:
    """MAE, Pearson r and Lin's CCC (with a Fisher-z jackknife-t CI over samples) of valence and arousal for
    each pair of VA sources with values on common samples. CCC is the field's agreement measure for VA:
    unlike r it drops when one source is shifted or scaled against the other.

    `points` is {source: (model version, {sample_id: (valence, arousal)})}; ground truth comes first as
    the reference."""
    available = {source: value for source, value in points.items() if value[1]}
    rows = []
    order = sorted(available, key=lambda s: (s != DATASET_SOURCE, s))
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
                row[f"pearson_{name}"] = pearson(x, y)
                agreement = metrics.ccc_bootstrap(x, y)
                row[f"ccc_{name}"] = agreement["ccc"]
                row[f"ccc_{name}_ci_low"], row[f"ccc_{name}_ci_high"] = agreement["ci_low"], agreement["ci_high"]
            rows.append(row)
    return rows
