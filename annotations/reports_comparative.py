"""The report's analysis of a best–worst or pairwise study (the Likert analysis is in reports.py).

The human score of a description is its counting score: %best − %worst (BWS) or %preferred − %not
preferred (pairwise), which is exactly the mean of +1 (chosen best / preferred), −1 (worst / other) and
0 (shown, neither; or a tie) over the choices that showed it. Entering those +1/0/−1 values as the
"ratings" of the description lets the metric meta-evaluation (annotations.metaeval: item level, within
sample, system level, paired comparisons, headline) run unchanged on comparative data. Bradley–Terry
scores, per-system scores, K&M split-half reliability and each metric's agreement with the raw choices
come from annotations.comparative.
"""
from __future__ import annotations

from typing import Any

from annotations import comparative as C
from annotations import metaeval as M
from annotations.exports_choices import StudyChoices
from annotations.models import Study

BT_RESAMPLES_MAX = 200  # each resample refits every sample's Bradley–Terry model (choix), ~1-2 ms each


def comparative_analysis(
    *, study: Study, label: str, data: StudyChoices, include_excluded: bool,
    scores: dict[str, dict[int, float]], params: dict[str, Any],
) -> dict[str, Any]:
    """Everything the report shows for one subset (all annotators / without excluded ones)."""
    from annotations.reports import _embedder_label, _embedder_rows  # reports imports this module

    choices = [c for c, ex in zip(data.choices, data.excluded, strict=True) if include_excluded or not ex]
    out: dict[str, Any] = {
        "label": label, "ratings": len(choices), "items": len({g for c in choices for g in c.shown}),
        "annotators": len({c.annotator for c in choices}), "alpha": {}, "distribution": {}, "out_of_scale": 0,
        "embedders": [], "comparisons": [], "models": [], "split_half": {}, "meta_notes": [], "identical": [],
        "compared_items": 0, "headline": "No comparative choices yet.", "reliability": {},
        "ceiling": {"ceiling": None, "reason": "no choices yet"},
    }
    if not choices:
        return out
    seed, resamples, confidence = params["seed"], params["resamples"], params["confidence"]
    groups, systems = data.groups, data.systems
    counting = C.counting_scores(choices, groups=groups, resamples=resamples, seed=seed, confidence=confidence)
    bt = C.bradley_terry_scores(choices, groups=groups, resamples=min(resamples, BT_RESAMPLES_MAX), seed=seed,
                                confidence=confidence)
    km = C.split_half(choices, groups=groups, splits=100, seed=seed)
    per_system = C.system_scores(choices, system_of=systems, groups=groups, resamples=min(resamples, 500),
                                 seed=seed, confidence=confidence)
    bt_by_item = {row["item"]: row for row in bt.rows()}
    descriptions = [
        {"generation_id": row["item"], "sample_id": groups[row["item"]], "system": systems[row["item"]],
         "text": data.texts[row["item"]], "shown": row["shown"], "best": row["best"], "worst": row["worst"],
         "counting": row["score"], "counting_ci": row["ci"],
         "bradley_terry": bt_by_item[row["item"]]["score"], "bt_ci": bt_by_item[row["item"]]["ci"]}
        for row in counting.rows()
    ]
    descriptions.sort(key=lambda d: (d["sample_id"], -(d["counting"] or 0)))
    agreement = [
        C.choice_agreement(choices, metric_scores=by_gen, metric=_embedder_label(key), groups=groups,
                           resamples=resamples, seed=seed, confidence=confidence).as_dict()
        for key, by_gen in sorted(scores.items())
    ]
    out["comparative"] = {
        "kind": study.kind, "units": counting.units, "choices": counting.choices,
        "descriptions": descriptions, "systems": per_system.rows(), "split_half": km.as_dict(),
        "agreement": agreement, "bt_resamples": bt.resamples, "resamples": counting.resamples,
    }
    out["split_half"] = {"K&M per-unit split, counting scores": km.as_dict()}
    if not scores:
        out["headline"] = ("No similarity scores for this study's descriptions; human scores and reliability "
                           "are shown below.")
        return out
    units, raters, values = C.choice_contributions(choices)
    meta = M.metaeval_compute(
        units=units, raters=raters, values=values, scores=scores, systems=systems, groups=groups,
        labels={key: _embedder_label(key) for key in scores}, resamples=resamples, seed=seed,
        confidence=confidence, znorm=False,
    )
    generations = {gen: {"generation_id": gen} for gen in groups}
    score_name = ("the best–worst score (%best − %worst)" if study.kind == Study.Kind.BWS
                  else "the pairwise score (%preferred − %not preferred)")
    out.update({
        # The meta-evaluation's human score here is the counting score, so the headline names it.
        "headline": meta["headline"].replace("the mean human rating", score_name).replace(
            "item(s)", "description(s)").replace(" items", " descriptions"), "reliability": meta["reliability"], "ceiling": meta["ceiling_detail"],
        "comparisons": meta["comparisons"], "system_level": meta.get("system_level"), "grouped": meta.get("grouped"),
        "meta_notes": meta["notes"], "identical": meta["identical"], "compared_items": meta["items"],
        "embedders": _embedder_rows(meta=meta, scores=scores, generations=generations),
    })
    out["split_half"]["per-description split of the +1/0/−1 choices (the ceiling's R)"] = (
        meta["reliability"]["split_half"])
    return out


COMPARATIVE_NOTES = [
    "Comparative study: the human score of a description is its counting score, %best − %worst (best–worst "
    "scaling, Kiritchenko & Mohammad 2017) or %preferred − %not preferred (pairwise), i.e. the mean of +1/−1/0 "
    "over the choices that showed it; the metric correlations, the within-sample and system-level figures and "
    "the headline use it as the mean human rating. Bradley–Terry log-strengths (choix; BWS choices as their "
    "implied pairs; each sample fitted and centred on its own; 0.5 pseudo-wins each way) are shown alongside.",
    "Comparative intervals: a description's counting score, Student's t of the ratio estimator over the units "
    "that showed it (all choices on a unit together); a system's counting score, the same over samples (faces "
    "are random for a system); Bradley–Terry scores, percentile bootstrap (descriptions: units resampled within "
    "their sample; systems: whole samples resampled). Reliability: K&M split-half (each unit's choices split in two, each half "
    "scored, Spearman between halves, Spearman–Brown, mean of 100 random splits).",
    "Agreement with raw choices: the share of decided pairs (BWS: the 5 pairs a best–worst choice implies; "
    "pairwise: the preference; ties left out) that the metric orders the same way; a metric tie counts half.",
]
