"""Study reports: agreement, human-vs-embedding correlations, per-model means, plots; versioned rows.

`study_report_build` is the one writer (the command, the POST route and the Celery task call it).
Only normal items enter the statistics; gold/attention items are checks on annotators, not data.
Every analysis runs twice: over all annotators, and without the annotators flagged `excluded`.
Model identities appear here because reports are for researchers (annotators never see them).
"""
from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Max
from django.template.loader import render_to_string
from django.utils import timezone

from annotations import agreement as A
from annotations import metaeval as M
from annotations.exports import study_ratings_rows, study_similarity_scores
from annotations.exports_choices import study_choices
from annotations.models import Annotator, Item, Report, Study
from annotations.participants import annotator_pseudonym
from annotations.reports_comparative import COMPARATIVE_NOTES, comparative_analysis
from audit.models import AuditEvent
from audit.services import audit_record
from inference.embeddings import embedder_note
from inference.models import Generation, PromptTemplate
from inference.output import figure_svg, number_format, pyplot
from inference.services.experiments import experiment_tables_build

log = logging.getLogger(__name__)

FORMATS = ("html", "csv", "json")
ALPHA_LEVELS = ("ordinal", "interval")  # a Likert scale is ordinal; interval is the common comparison
SUBSETS = {"all": "All annotators", "included": "Without excluded annotators"}


class ReportError(ValueError):
    """The report cannot be built as asked (unknown format, bad parameter)."""


def formats_parse(formats: Sequence[str] | str) -> list[str]:
    items = [f.strip().lower() for f in (formats.split(",") if isinstance(formats, str) else formats) if f.strip()]
    unknown = [f for f in items if f not in FORMATS]
    if unknown or not items:
        raise ReportError(f"unknown report format(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(FORMATS)}")
    return list(dict.fromkeys(items))


def study_report_build(
    *,
    study: Study,
    user: AbstractBaseUser | None = None,
    formats: Sequence[str] | str = FORMATS,
    resamples: int = 1000,
    alpha_min: float = 0.667,
    confidence: float = 0.95,
    seed: int = A.DEFAULT_SEED,
    alpha_method: str = "items",
) -> Report:
    """Compute the study's statistics and store them as the next Report version."""
    chosen = formats_parse(formats)
    try:
        A.bootstrap_params_check(resamples=resamples, confidence=confidence, alpha_min=alpha_min, seed=seed)
    except A.AgreementInputError as exc:
        raise ReportError(str(exc)) from None
    if alpha_method not in A.ALPHA_BOOTSTRAP_METHODS:
        raise ReportError(f"unknown alpha bootstrap method {alpha_method!r}; choose one of "
                          f"{', '.join(A.ALPHA_BOOTSTRAP_METHODS)}")
    params = {"formats": chosen, "resamples": resamples, "alpha_min": alpha_min, "confidence": confidence,
              "seed": seed, "alpha_method": alpha_method, "alpha_levels": list(ALPHA_LEVELS)}
    # The statistics run outside the transaction (seconds of numpy); only the version number and
    # the insert are serialised, by locking the study row, so two builds never take one version.
    results = study_results_compute(study=study, params=params)
    plots = study_plots_render(results=results) if "html" in chosen else {}
    with transaction.atomic():
        Study.objects.select_for_update().get(pk=study.pk)
        version = (study.reports.aggregate(v=Max("version"))["v"] or 0) + 1
        results["version"] = version
        html = ""
        if "html" in chosen:
            html = render_to_string("annotations/report.html", {"study": study, "r": results, "plots": plots,
                                                                 "version": version})
        report = Report.objects.create(study=study, version=version, params=params, results=results,
                                       html=html, created_by=user if user and user.is_authenticated else None)
        audit_record(action=AuditEvent.Action.REPORT_BUILT, target=report, actor=user, study_id=study.pk,
                     summary=f"built report v{version}")
    log.info("study %s: report v%s built", study.slug, version)
    return report


def study_results_compute(*, study: Study, params: dict[str, Any]) -> dict[str, Any]:
    rows = study_ratings_rows(study=study, include_checks=False)
    scores = study_similarity_scores(study=study)
    generations = _item_generations(study)
    domain = list(range(study.scale_min, study.scale_max + 1))
    results: dict[str, Any] = {
        "study": {"slug": study.slug, "name": study.name, "question": study.question,
                  "scale": [study.scale_min, study.scale_max], "scale_labels": study.scale_labels,
                  "raters_per_item": study.raters_per_item},
        "generated_at": timezone.now().isoformat(),
        "params": params,
        "annotators": _annotator_summary(study),
        "analyses": {},
        "classification": _classification_tables(study),
        "notes": [
            "Alpha: Krippendorff (2011), levels " + ", ".join(ALPHA_LEVELS) + f" over the domain {domain}; "
            f"CI and P(alpha < alpha_min): {A.ALPHA_BOOTSTRAP_NOTES[params.get('alpha_method', 'items')]}; "
            f"{params['resamples']} resamples, seed {params['seed']}.",
            "Correlations: each embedder's cosine (mean over reference descriptions) against the item's mean "
            f"human rating; {M.BOOTSTRAP_NOTE}; p-values from scipy. All figures of one comparison use the same "
            "items: those with two or more ratings and a score from every embedder.",
            "Differences between embedders: paired bootstrap (the same resampled items for both), and each p "
            "inverts its CI (p < 0.05 exactly when the 95% CI excludes 0): Spearman by the percentile interval, "
            "Pearson by a symmetric bootstrap-t (influence-function SE). Williams' (1959) t-test, which assumes "
            "normal data with equal error variance (a mean over a varying number of biased raters has neither), "
            "is kept in the JSON as a secondary figure. In 3000 simulated studies per design (80 items; crowd "
            "raters with bias, missing ratings) the bootstrap-t called two equally good embedders different in "
            "3.8-4.4% of studies, Williams' test in 4.5-5.2% (up to 6.2% in smaller runs) and the percentile "
            "interval in 5.5-6.1% (docs/reports.md). Holm-corrected over all comparisons shown.",
            "Reliability of the mean rating R: split-half correlation averaged over 200 random splits, "
            "Spearman-Brown corrected (2r / (1 + r)); and ICC(2,k) (Shrout & Fleiss 1979, F interval after "
            "McGraw & Wong 1996), or ICC(1,k) with k0 when raters are not crossed with items.",
            "Ceiling: the most a metric can correlate with the mean human rating is sqrt(R); disattenuated "
            "r / sqrt(R) estimates its correlation with an error-free human score.",
            "Grouped: Kendall tau-b among the descriptions of one sample, averaged over samples (Student's t "
            "interval over samples). System level: per LLM config x prompt mean, Pearson/Kendall over systems and "
            "pairwise accuracy (Kocmi et al. 2021); Pearson's interval is for the systems' population means "
            "(noise-corrected r, items resampled within each system); Kendall and pairwise accuracy have no "
            "interval, because a bootstrap over items under-covers them when systems are close. Per-model mean "
            "ratings: Student's t interval over items.",
        ],
    }
    results["study"]["kind"] = study.kind
    if study.kind != Study.Kind.LIKERT:
        data = study_choices(study=study)
        for subset in SUBSETS:
            results["analyses"][subset] = comparative_analysis(
                study=study, label=SUBSETS[subset], data=data, include_excluded=subset == "all", scores=scores,
                params=params,
            )
        results["notes"] = COMPARATIVE_NOTES + results["notes"][1:]  # alpha does not apply to choices
    else:
        for subset in SUBSETS:
            subset_rows = [r for r in rows if subset == "all" or not r["annotator_excluded"]]
            results["analyses"][subset] = _analysis(
                label=SUBSETS[subset], rows=subset_rows, domain=domain, scores=scores, generations=generations,
                params=params,
            )
    results["headline"] = results["analyses"]["included"]["headline"]
    return results


def _item_generations(study: Study) -> dict[int, dict[str, Any]]:
    items = Item.objects.filter(study=study, kind=Item.Kind.NORMAL, generation__isnull=False).select_related(
        "generation__config", "generation__prompt", "generation__va_estimate")
    return {
        item.pk: {"generation_id": item.generation_id, "model": item.generation.config.name,
                  "backend": item.generation.config.backend,
                  "prompt": f"{item.generation.prompt.name} v{item.generation.prompt.version}",
                  "sample_id": item.generation.va_estimate.sample_id}
        for item in items
    }


def _annotator_summary(study: Study) -> dict[str, Any]:
    annotators = list(Annotator.objects.filter(study=study).order_by("id"))
    with_ratings = set(study.items.values_list("ratings__annotator_id", flat=True).exclude(ratings__isnull=True))
    return {
        "total": len(annotators),
        "with_ratings": len(with_ratings),
        "completed": sum(1 for a in annotators if a.completed_at),
        "excluded": sum(1 for a in annotators if a.excluded),
        "failed_checks": sum(a.failed_checks for a in annotators),
        # Pseudonyms, never platform ids: a report is shared more widely than the payment list.
        "exclusions": [{"annotator_id": a.pk, "annotator": annotator_pseudonym(annotator=a, study=study),
                        "platform": a.platform, "reason": a.exclusion_reason or "(no reason)",
                        "failed_checks": a.failed_checks} for a in annotators if a.excluded],
        "rules": {"max_failed_checks": study.max_failed_checks, "min_median_seconds": study.min_median_seconds},
    }


def _analysis(
    *,
    label: str,
    rows: list[dict[str, Any]],
    domain: list[int],
    scores: dict[str, dict[int, float]],
    generations: dict[int, dict[str, Any]],
    params: dict[str, Any],
) -> dict[str, Any]:
    units = [r["item_id"] for r in rows]
    values = [r["value"] for r in rows]
    seed, resamples, confidence = params["seed"], params["resamples"], params["confidence"]
    out: dict[str, Any] = {
        "label": label, "ratings": len(rows), "items": len(set(units)),
        "annotators": len({r["annotator_id"] for r in rows}),
        "distribution": {str(v): 0 for v in domain},
        "out_of_scale": 0,
    }
    for v in values:
        if str(v) in out["distribution"]:
            out["distribution"][str(v)] += 1
        else:
            out["out_of_scale"] += 1
    # A rating outside the study's scale cannot enter alpha's value domain; it is counted, not dropped silently.
    keep = [domain[0] <= v <= domain[-1] for v in values]
    units = [u for u, k in zip(units, keep, strict=True) if k]
    values = [v for v, k in zip(values, keep, strict=True) if k]
    counts = A.value_counts_from_long(units=units, values=values, domain=domain)
    out["alpha"] = {}
    for level in params["alpha_levels"]:
        boot = A.alpha_bootstrap(value_counts=counts, domain=domain, level=level, resamples=resamples,
                                 alpha_min=params["alpha_min"], confidence=confidence, seed=seed,
                                 method=params.get("alpha_method", "items"))
        point = A.alpha_compute(value_counts=counts, domain=domain, level=level)
        out["alpha"][level] = {**point.as_dict(), **boot.as_dict()}
    meta = _metaeval(rows=[r for r, k in zip(rows, keep, strict=True) if k], scores=scores,
                     generations=generations, params=params)
    out["headline"] = meta["headline"]
    out["reliability"] = meta["reliability"]
    out["ceiling"] = meta["ceiling_detail"]
    out["split_half"] = {"spearman": meta["reliability"]["split_half_spearman"],
                         "pearson": meta["reliability"]["split_half"]}
    out["comparisons"] = meta["comparisons"]
    out["system_level"] = meta.get("system_level")
    out["grouped"] = meta.get("grouped")
    out["meta_notes"] = meta["notes"]
    out["identical"] = meta["identical"]
    out["compared_items"] = meta["items"]
    out["embedders"] = _embedder_rows(meta=meta, scores=scores, generations=generations)
    agg = A.item_aggregates(units=units, values=values)
    item_mean = {int(u): float(m) for u, m in zip(agg["unit"], agg["mean"], strict=True)}
    out["models"] = _model_means(item_mean=item_mean, generations=generations, params=params)
    return out


def _embedder_label(key: str) -> str:
    family, _, model = key.partition("/")
    return f"{family} ({model})" if model else family


def _metaeval(
    *, rows: list[dict[str, Any]], scores: dict[str, dict[int, float]], generations: dict[int, dict[str, Any]],
    params: dict[str, Any],
) -> dict[str, Any]:
    """Reliability, ceiling, item/grouped/system-level correlations and paired comparisons of the
    embedders on one set of items (annotations.metaeval). An item is a rated description; its system
    is the LLM config x prompt that wrote it, its group the sample (face) it describes."""
    item_scores = {
        key: {item_id: by_gen[g["generation_id"]] for item_id, g in generations.items() if g["generation_id"] in by_gen}
        for key, by_gen in scores.items()
    }
    return M.metaeval_compute(
        units=[r["item_id"] for r in rows], raters=[r["annotator_id"] for r in rows],
        values=[float(r["value"]) for r in rows], scores=item_scores,
        systems={item_id: f"{g['model']} · {g['prompt']}" for item_id, g in generations.items()},
        groups={item_id: g["sample_id"] for item_id, g in generations.items()},
        labels={key: _embedder_label(key) for key in scores},
        resamples=params["resamples"], seed=params["seed"], confidence=params["confidence"],
    )


def _embedder_rows(
    *, meta: dict[str, Any], scores: dict[str, dict[int, float]], generations: dict[int, dict[str, Any]],
) -> list[dict[str, Any]]:
    """One row per distinct embedder (identical checkpoints merged), on the compared items."""
    out = []
    human = dict(zip(meta["units"], meta["human_means"], strict=True))
    for name, m in meta["metrics"].items():
        keys = name.split(" = ")
        first = keys[0]
        family, _, model = first.partition("/")
        by_gen = scores[first]
        x = [by_gen[generations[u]["generation_id"]] for u in meta["units"]]
        out.append({
            "key": name, "keys": keys, "label": m["label"], "family": family, "model": model,
            "note": " ".join(dict.fromkeys(
                note for k in keys if (note := embedder_note(family=k.partition("/")[0], model=k.partition("/")[2])))),
            "items": m["n"], "x": x, "y": [human[u] for u in meta["units"]],
            "disattenuated": m.get("disattenuated", {}), "exceeds_ceiling": m.get("exceeds_ceiling", False),
            "correlations": {method: _correlation_row(m[method]) for method in M.METHODS},
            "znorm": {method: _correlation_row(c) for method, c in m.get("znorm", {}).items()},
        })
    return out


def _correlation_row(c: dict[str, Any]) -> dict[str, Any]:
    ci = c.get("ci") or [None, None]
    return {"r": c["r"], "p_value": c["p"], "ci_low": ci[0], "ci_high": ci[1], "n": c["n"],
            "undefined_resamples": c.get("undefined_resamples", 0), "reason": c.get("reason", "")}


def _model_means(
    *, item_mean: dict[int, float], generations: dict[int, dict[str, Any]], params: dict[str, Any]
) -> list[dict[str, Any]]:
    by_model: dict[str, list[float]] = defaultdict(list)
    backend: dict[str, str] = {}
    for item_id, g in generations.items():
        if item_id in item_mean:
            by_model[g["model"]].append(item_mean[item_id])
            backend[g["model"]] = g["backend"]
    return [
        {"model": model, "backend": backend[model],
         **A.mean_bootstrap(values=vals, resamples=params["resamples"], confidence=params["confidence"],
                            seed=params["seed"]).as_dict()}
        for model, vals in sorted(by_model.items())
    ]


def _classification_tables(study: Study) -> dict[str, Any]:
    """The experiment runner's classification tables for the study's models on its dataset.

    The study rates descriptions; the categorization answers of the same LLM configs on the same
    dataset (any categorize prompt) are what the runner scores. Absent pieces give a reason, not a table.
    """
    if study.dataset_id is None:
        return {"available": False, "reason": "the study has no dataset"}
    gens = Generation.objects.filter(study_items__study=study)
    config_ids = sorted(set(gens.values_list("config_id", flat=True)))
    sources = Counter(gens.values_list("va_estimate__source", flat=True))
    prompt_ids = sorted(set(Generation.objects.filter(
        config_id__in=config_ids, task=PromptTemplate.Task.CATEGORIZE, va_estimate__sample__dataset_id=study.dataset_id,
    ).values_list("prompt_id", flat=True)))
    if not config_ids or not prompt_ids:
        return {"available": False,
                "reason": "no categorization answers from this study's models on its dataset"}
    va_source = sources.most_common(1)[0][0]
    try:
        tables = experiment_tables_build(dataset_id=study.dataset_id, va_source=va_source, config_ids=config_ids,
                                         prompt_ids=prompt_ids)
    except Exception as exc:  # the report must still build; the reason is shown to the researcher
        log.exception("classification tables failed for study %s", study.slug)
        return {"available": False, "reason": f"classification tables failed: {exc}"}
    return {"available": True, "va_source": va_source, "tables": [
        _table(title, tables.get(key) or [])
        for key, title in (("accuracy", "Accuracy per system (with chance and majority baselines)"),
                           ("per_emotion", "Per-emotion precision, recall, F1"))
    ]}


def _table(title: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    columns = list(dict.fromkeys(k for row in rows for k, v in row.items() if not isinstance(v, dict | list)))
    return {"title": title, "columns": columns,
            "rows": [[round(row.get(c), 3) if isinstance(row.get(c), float) else row.get(c) for c in columns]
                     for row in rows]}


# --- plots --------------------------------------------------------------------------------------

def study_plots_render(*, results: dict[str, Any]) -> dict[str, Any]:
    """Matplotlib SVG strings: rating distribution, one scatter per embedder, per-model means."""
    plt = pyplot()
    included = results["analyses"]["included"]
    plots: dict[str, Any] = {"distribution": _distribution_svg(results, plt), "scatter": [], "models": ""}
    for emb in included["embedders"]:
        if emb["items"]:
            plots["scatter"].append({"key": emb["key"], "svg": _scatter_svg(emb, plt)})
    if included["models"]:
        plots["models"] = _models_svg(included["models"], plt)
    return plots


def _distribution_svg(results: dict[str, Any], plt: Any) -> str:
    fig, ax = plt.subplots(figsize=(5, 2.8))
    width = 0.4
    for offset, subset in ((-width / 2, "all"), (width / 2, "included")):
        dist = results["analyses"][subset]["distribution"]
        ax.bar(np.arange(len(dist)) + offset, list(dist.values()), width=width, label=SUBSETS[subset])
        ax.set_xticks(np.arange(len(dist)), list(dist.keys()))
    ax.set_xlabel("rating")
    ax.set_ylabel("ratings")
    ax.legend(frameon=False)
    return figure_svg(fig)


def _scatter_svg(emb: dict[str, Any], plt: Any) -> str:
    fig, ax = plt.subplots(figsize=(4.2, 3.2))
    ax.scatter(emb["x"], emb["y"], s=12, alpha=0.7)
    rho = emb["correlations"]["spearman"]
    if rho["r"] is None:
        title = f"Spearman undefined: {rho['reason']}"
    else:
        title = f"Spearman ρ = {rho['r']:.3f} [{_fmt(rho['ci_low'])}, {_fmt(rho['ci_high'])}], n = {rho['n']}"
    ax.set_title(title, fontsize=8)
    ax.set_xlabel(f"cosine similarity ({emb['key']})")
    ax.set_ylabel("mean human rating")
    return figure_svg(fig)


def _models_svg(models: list[dict[str, Any]], plt: Any) -> str:
    fig, ax = plt.subplots(figsize=(5, 0.5 + 0.45 * len(models)))
    names = [m["model"] for m in models]
    means = [m["mean"] for m in models]
    lows = [m["mean"] - (m["ci_low"] if m["ci_low"] is not None else m["mean"]) for m in models]
    highs = [(m["ci_high"] if m["ci_high"] is not None else m["mean"]) - m["mean"] for m in models]
    ax.errorbar(means, np.arange(len(models)), xerr=[lows, highs], fmt="o", capsize=3)
    ax.set_yticks(np.arange(len(models)), names)
    ax.set_xlabel("mean rating (95% t interval over items)")
    ax.invert_yaxis()
    return figure_svg(fig)


def _fmt(value: float | None) -> str:
    return number_format(value, missing="—")
