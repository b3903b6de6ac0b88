"""Researcher exports: ratings (long format, pseudonymised annotators), per-item aggregates, the payment
list (the only one with raw platform ids), report tables.

Rows are plain dicts so the same data serve CSV downloads, the token JSON API and the report.

CSV bodies come from the project's one hardened writer, `inference.output` (formula neutralisation,
every text cell quoted); `csv_cell`/`csv_render` are re-exported here for existing callers.
"""
from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from django.db.models import Count

from annotations.agreement import item_aggregates
from annotations.exports_choices import comparative_table_rows
from annotations.models import Annotator, Item, Rating, Study, UnitOption
from inference.models import Similarity
from inference.output import csv_cell as csv_cell  # re-exported for existing callers
from inference.output import csv_render

# Every rating joins back to its sample, image, VA point, model and prompt without another table.
# `annotator` is a pseudonym (annotations/participants.py); raw platform ids only in PAYMENT_COLUMNS.
JOIN_COLUMNS = [
    "study", "item_id", "item_kind", "generation_id", "sample_id", "sample_external_id", "image_name",
    "image_sha256", "dataset", "dataset_labels", "va_source", "valence", "arousal", "llm_config", "llm_backend",
    "llm_model", "prompt_name", "prompt_version", "task", "text",
]
RATING_COLUMNS = [
    "rating_id", *JOIN_COLUMNS, "annotator", "annotator_id", "annotator_platform", "annotator_excluded",
    "exclusion_reason", "value", "seconds_on_item", "passed_check", "comment", "shown_at", "created_at",
]
PAYMENT_COLUMNS = [
    "platform", "platform_id", "platform_session", "annotator", "outcome", "code", "n_ratings", "joined_at",
    "completed_at", "reward", "currency",
]


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def item_join_fields(*, item: Item, study: Study) -> dict[str, Any]:
    """The columns that tie an item to the data it was made from (empty for check items)."""
    gen = item.generation
    va = gen.va_estimate if gen is not None else None
    sample = va.sample if va is not None else None
    return {
        "study": study.slug, "item_id": item.pk, "item_kind": item.kind, "generation_id": item.generation_id,
        "sample_id": sample.pk if sample else None, "sample_external_id": sample.external_id if sample else "",
        "image_name": sample.image.name if sample else "", "image_sha256": sample.image_sha256 if sample else "",
        "dataset": sample.dataset.name if sample else "",
        "dataset_labels": "|".join(str(label) for label in sample.labels) if sample and sample.labels else "",
        "va_source": va.source if va else "", "valence": va.valence if va else None,
        "arousal": va.arousal if va else None, "llm_config": gen.config.name if gen else "",
        "llm_backend": gen.config.backend if gen else "", "llm_model": gen.config.model if gen else "",
        "prompt_name": gen.prompt.name if gen else "", "prompt_version": gen.prompt.version if gen else None,
        "task": gen.task if gen else "", "text": item.text,
    }


ITEM_RELATED = ("generation__config", "generation__prompt", "generation__va_estimate__sample__dataset")


def study_ratings_rows(*, study: Study, include_checks: bool = True) -> list[dict[str, Any]]:
    """Every rating of the study in long format; gold/attention items included unless told not to."""
    from annotations.participants import annotator_pseudonym

    qs = (
        Rating.objects.filter(item__study=study)
        .select_related("annotator", "assignment", *(f"item__{path}" for path in ITEM_RELATED))
        .order_by("id")
    )
    if not include_checks:
        qs = qs.filter(item__kind=Item.Kind.NORMAL)
    joins: dict[int, dict[str, Any]] = {}
    rows = []
    for r in qs:
        if r.item_id not in joins:
            joins[r.item_id] = item_join_fields(item=r.item, study=study)
        rows.append({
            "rating_id": r.pk, **joins[r.item_id],
            "annotator": annotator_pseudonym(annotator=r.annotator, study=study), "annotator_id": r.annotator_id,
            "annotator_platform": r.annotator.platform, "annotator_excluded": r.annotator.excluded,
            "exclusion_reason": r.annotator.exclusion_reason, "value": r.value,
            "seconds_on_item": r.seconds_on_item, "passed_check": r.passed_check, "comment": r.comment,
            "shown_at": _iso(r.assignment.shown_at), "created_at": _iso(r.created_at),
        })
    return rows


def study_payment_rows(*, study: Study) -> list[dict[str, Any]]:
    """The one export with raw platform ids: who to pay, with which code. Erased participants are left out."""
    from annotations.participants import annotator_pseudonym
    from annotations.selectors import annotator_completion, study_reward

    reward = study_reward(study=study)
    annotators = (
        Annotator.objects.filter(study=study, identity_erased_at__isnull=True)
        .annotate(n_ratings=Count("ratings")).select_related("study").order_by("id")
    )
    rows = []
    for a in annotators:
        code = annotator_completion(annotator=a).code if a.completed_at else None
        rows.append({
            "platform": a.platform, "platform_id": a.external_id, "platform_session": a.external_session,
            "annotator": annotator_pseudonym(annotator=a, study=study), "outcome": a.outcome, "code": code,
            "n_ratings": a.n_ratings, "joined_at": _iso(a.created_at), "completed_at": _iso(a.completed_at),
            "reward": float(reward) if reward is not None and code == study.completion_code else None,
            "currency": study.pay_currency,
        })
    return rows


def embedder_key(family: str, model: str) -> str:
    return f"{family}/{model}"


def study_similarity_scores(*, study: Study) -> dict[str, dict[int, float]]:
    """{embedder key: {generation id: mean cosine over reference descriptions}}.

    A generation compared against several references gets the mean of its cosines, so every item
    carries one score per embedder.
    """
    sums: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    # A Likert item is one generation; a comparative unit shows several, through its options.
    shown = Item.objects.filter(study=study, generation__isnull=False).values("generation_id").union(
        UnitOption.objects.filter(item__study=study, generation__isnull=False).values("generation_id"))
    rows = Similarity.objects.filter(
        generation_id__in=[row["generation_id"] for row in shown], cosine__isnull=False
    ).values_list("embedder_family", "embedder_model", "generation_id", "cosine")
    for family, model, generation_id, cosine in rows:
        sums[embedder_key(family, model)][generation_id].append(cosine)
    return {key: {gid: sum(v) / len(v) for gid, v in per_gen.items()} for key, per_gen in sums.items()}


def study_item_rows(*, study: Study) -> tuple[list[dict[str, Any]], list[str]]:
    """Per-item aggregates (all annotators and without excluded ones) plus the model that wrote the
    item and each embedder's score; returns the rows and the column names."""
    items = list(Item.objects.filter(study=study).select_related(*ITEM_RELATED).order_by("id"))
    # Comparative choices carry no value; their scores are in the scores export.
    ratings = list(Rating.objects.filter(item__study=study, value__isnull=False).values_list(
        "item_id", "value", "annotator__excluded"))
    scores = study_similarity_scores(study=study)
    embedders = sorted(scores)
    stats_all = _aggregate_by_item([(i, v) for i, v, _ in ratings])
    stats_in = _aggregate_by_item([(i, v) for i, v, excluded in ratings if not excluded])
    rows = []
    for item in items:
        gen = item.generation
        row: dict[str, Any] = {
            **item_join_fields(item=item, study=study), "kind": item.kind,
            "model": gen.config.name if gen else "", "backend": gen.config.backend if gen else "",
            "prompt": f"{gen.prompt.name} v{gen.prompt.version}" if gen else "",
        }
        for suffix, table in (("all", stats_all), ("included", stats_in)):
            count, mean, median = table.get(item.pk, (0, None, None))
            row.update({f"n_{suffix}": count, f"mean_{suffix}": mean, f"median_{suffix}": median})
        for key in embedders:
            row[f"sim:{key}"] = scores[key].get(item.generation_id) if gen else None
        rows.append(row)
    columns = [*JOIN_COLUMNS, "kind", "model", "backend", "prompt",
               "n_all", "mean_all", "median_all", "n_included", "mean_included", "median_included",
               *[f"sim:{key}" for key in embedders]]
    return rows, columns


def _aggregate_by_item(pairs: list[tuple[int, int]]) -> dict[int, tuple[int, float, float]]:
    if not pairs:
        return {}
    agg = item_aggregates(units=[p[0] for p in pairs], values=[p[1] for p in pairs])
    return {
        int(unit): (int(count), float(mean), float(median))
        for unit, count, mean, median in zip(agg["unit"], agg["count"], agg["mean"], agg["median"], strict=True)
    }


REPORT_COLUMNS = ["subset", "statistic", "subject", "value", "ci_low", "ci_high", "n", "note"]


def report_body(*, results: dict[str, Any], html: str, fmt: str) -> str | None:
    """A stored report as a file body: json (the results), csv (one row per statistic) or html;
    None when the report has no such form (built without HTML, unknown format)."""
    if fmt == "json":
        return json.dumps(results, indent=1, default=str)
    if fmt == "csv":
        return csv_render(report_table_rows(results), REPORT_COLUMNS)
    if fmt == "html" and html:
        return html
    return None


def report_table_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The report's numbers as one long table (one row per statistic), for the report CSV."""
    rows: list[dict[str, Any]] = []
    for subset, analysis in results.get("analyses", {}).items():
        rows += comparative_table_rows(subset=subset, comparative=analysis.get("comparative"))
        for level, a in analysis.get("alpha", {}).items():
            rows.append({"subset": subset, "statistic": f"alpha_{level}", "subject": "question",
                         "value": a.get("alpha"), "ci_low": a.get("ci_low"), "ci_high": a.get("ci_high"),
                         "n": a.get("units"), "note": a.get("reason") or
                         f"P(alpha<{a.get('alpha_min')})={a.get('p_below_min')}"})
        for value, count in analysis.get("distribution", {}).items():
            rows.append({"subset": subset, "statistic": "rating_count", "subject": str(value), "value": count})
        for method, s in analysis.get("split_half", {}).items():
            rows.append({"subset": subset, "statistic": f"split_half_{method}", "subject": "human-human",
                         "value": s.get("spearman_brown"), "n": s.get("n"),
                         "note": s.get("reason") or f"half r={s.get('r_half')}; Spearman-Brown 2r/(1+r)"})
        icc = (analysis.get("reliability") or {}).get("icc")
        if icc:
            rows.append({"subset": subset, "statistic": icc["model"], "subject": "human-human",
                         "value": icc.get("average"), "ci_low": icc.get("ci_low"), "ci_high": icc.get("ci_high"),
                         "n": icc.get("n"), "note": icc.get("reason") or icc.get("method_note")})
        ceiling = analysis.get("ceiling")
        if ceiling:
            rows.append({"subset": subset, "statistic": "ceiling_sqrt_reliability", "subject": "human-human",
                         "value": ceiling.get("ceiling"), "n": ceiling.get("items"),
                         "note": ceiling.get("reason") or f"R={ceiling.get('reliability')} ({ceiling.get('source')})"})
        for c in analysis.get("comparisons", []):
            ci = c.get("ci") or [None, None]
            rows.append({"subset": subset, "statistic": f"delta_{c['method']}", "subject": f"{c['a']} - {c['b']}",
                         "value": c.get("delta"), "ci_low": ci[0], "ci_high": ci[1],
                         "note": f"p={c.get('p')}; Holm p={c.get('p_holm')}; {c.get('test')}"})
        for emb in analysis.get("embedders", []):
            for method, c in emb.get("correlations", {}).items():
                rows.append({"subset": subset, "statistic": method, "subject": emb["key"], "value": c.get("r"),
                             "ci_low": c.get("ci_low"), "ci_high": c.get("ci_high"), "n": c.get("n"),
                             "note": c.get("reason") or emb.get("note", "")})
        for model in analysis.get("models", []):
            rows.append({"subset": subset, "statistic": "mean_rating", "subject": model["model"],
                         "value": model.get("mean"), "ci_low": model.get("ci_low"),
                         "ci_high": model.get("ci_high"), "n": model.get("n"), "note": model.get("reason", "")})
    return rows
