"""Comparative (best–worst, pairwise) study data: raw choices in long format, scores per description.

Rows are plain dicts for the CSV downloads and the report. Annotators appear as the study's pseudonym
(annotations/participants.py, the same as in the ratings export) and their row id; never a platform id.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from annotations import comparative as C
from annotations.models import Item, Rating, Study, UnitOption
from annotations.participants import annotator_pseudonym

CHOICE_COLUMNS = [
    "study", "unit_id", "unit_kind", "rating_id", "annotator", "annotator_id", "annotator_excluded", "position", "option_id",
    "generation_id", "sample_id", "system", "text", "chosen", "seconds_on_unit", "passed_check", "created_at",
]
SCORE_COLUMNS = [
    "generation_id", "sample_id", "system", "text", "shown", "best", "worst",
    "counting", "counting_ci_low", "counting_ci_high", "bradley_terry", "bt_ci_low", "bt_ci_high",
]


def _system(option: UnitOption) -> str:
    gen = option.generation
    return f"{gen.config.name} · {gen.prompt.name} v{gen.prompt.version}" if gen is not None else ""


def _chosen(study: Study, rating: Rating, option: UnitOption) -> str:
    if rating.best_id is None and rating.worst_id is None:
        return "tie"
    pairwise = study.kind == Study.Kind.PAIRWISE
    if option.pk == rating.best_id:
        return "preferred" if pairwise else "best"
    if option.pk == rating.worst_id:
        return "other" if pairwise else "worst"
    return ""


def _ratings(study: Study, *, include_checks: bool) -> list[Rating]:
    qs = (Rating.objects.filter(item__study=study).select_related("item", "annotator")
          .prefetch_related("item__options__generation__config", "item__options__generation__prompt",
                            "item__options__generation__va_estimate")
          .order_by("id"))
    if not include_checks:
        qs = qs.filter(item__kind=Item.Kind.NORMAL)
    return list(qs)


def _shown(rating: Rating) -> list[UnitOption]:
    options = {option.pk: option for option in rating.item.options.all()}
    order = [options[pk] for pk in rating.shown_order if pk in options]
    return order or list(options.values())


def study_choice_rows(*, study: Study, include_checks: bool = True) -> list[dict[str, Any]]:
    """One row per description shown in each submitted unit: who saw it where, and what was chosen."""
    rows = []
    for rating in _ratings(study, include_checks=include_checks):
        pseudonym = annotator_pseudonym(annotator=rating.annotator, study=study)
        for position, option in enumerate(_shown(rating), start=1):
            gen = option.generation
            rows.append({
                "study": study.slug, "unit_id": rating.item_id, "unit_kind": rating.item.kind,
                "rating_id": rating.pk, "annotator": pseudonym, "annotator_id": rating.annotator_id,
                "annotator_excluded": rating.annotator.excluded, "position": position, "option_id": option.pk,
                "generation_id": option.generation_id, "sample_id": gen.va_estimate.sample_id if gen else None,
                "system": _system(option), "text": option.text, "chosen": _chosen(study, rating, option),
                "seconds_on_unit": rating.seconds_on_item, "passed_check": rating.passed_check,
                "created_at": rating.created_at.isoformat(),
            })
    return rows


@dataclass
class StudyChoices:
    """The choices on a study's design units as `comparative.Choice`s over generation ids, with their context."""

    choices: list[C.Choice]
    groups: dict[int, int]  # generation -> sample
    systems: dict[int, str]  # generation -> LLM config · prompt
    texts: dict[int, str]
    excluded: list[bool]  # per choice: by an excluded annotator


def study_choices(*, study: Study) -> StudyChoices:
    """Every choice on a normal unit (check units are about the annotator, not the descriptions)."""
    out = StudyChoices(choices=[], groups={}, systems={}, texts={}, excluded=[])
    for rating in _ratings(study, include_checks=False):
        shown = _shown(rating)
        if any(option.generation_id is None for option in shown):
            continue
        gen_of = {option.pk: option.generation_id for option in shown}
        for option in shown:
            out.groups[option.generation_id] = option.generation.va_estimate.sample_id
            out.systems[option.generation_id] = _system(option)
            out.texts[option.generation_id] = option.text
        out.choices.append(C.Choice(
            unit=rating.item_id, shown=tuple(gen_of[option.pk] for option in shown),
            best=gen_of.get(rating.best_id), worst=gen_of.get(rating.worst_id), annotator=rating.annotator_id,
        ))
        out.excluded.append(rating.annotator.excluded)
    return out


def study_score_rows(
    *, study: Study, include_excluded: bool = False, resamples: int = 200, seed: int = 0
) -> list[dict[str, Any]]:
    """Per description: %best − %worst and Bradley–Terry, each with a CI over units (t for counting, bootstrap for Bradley–Terry)."""
    data = study_choices(study=study)
    choices = [c for c, ex in zip(data.choices, data.excluded, strict=True) if include_excluded or not ex]
    if not choices:
        return []
    counting = C.counting_scores(choices, groups=data.groups, resamples=resamples, seed=seed)
    bt = C.bradley_terry_scores(choices, groups=data.groups, resamples=resamples, seed=seed)
    bt_rows = {row["item"]: row for row in bt.rows()}
    rows = []
    for row in counting.rows():
        gen_id, other = row["item"], bt_rows[row["item"]]
        rows.append({
            "generation_id": gen_id, "sample_id": data.groups[gen_id], "system": data.systems[gen_id],
            "text": data.texts[gen_id], "shown": row["shown"], "best": row["best"], "worst": row["worst"],
            "counting": row["score"], "counting_ci_low": row["ci"][0], "counting_ci_high": row["ci"][1],
            "bradley_terry": other["score"], "bt_ci_low": other["ci"][0], "bt_ci_high": other["ci"][1],
        })
    return sorted(rows, key=lambda r: (r["sample_id"], -(r["counting"] or 0)))


def comparative_table_rows(*, subset: str, comparative: dict[str, Any] | None) -> list[dict[str, Any]]:
    """A comparative analysis as rows of the report CSV (subset, statistic, subject, value, CI, n, note)."""
    if not comparative:
        return []
    km = comparative["split_half"]
    rows = [{"subset": subset, "statistic": "split_half_km", "subject": "human-human",
             "value": km.get("spearman_brown"), "n": km.get("n"),
             "note": km.get("reason") or f"half r={km.get('r_half')}; Spearman-Brown; {km.get('splits')} splits"}]
    for s in comparative["systems"]:
        for key, ci in (("counting", "counting_ci"), ("bradley_terry", "bradley_terry_ci")):
            low, high = s.get(ci) or (None, None)
            rows.append({"subset": subset, "statistic": f"system_{key}", "subject": s["system"], "value": s[key],
                         "ci_low": low, "ci_high": high, "n": s["comparisons"]})
    for d in comparative["descriptions"]:
        rows.append({"subset": subset, "statistic": "description_counting", "subject": d["generation_id"],
                     "value": d["counting"], "ci_low": d["counting_ci"][0], "ci_high": d["counting_ci"][1],
                     "n": d["shown"]})
    for g in comparative["agreement"]:
        rows.append({"subset": subset, "statistic": "choice_agreement", "subject": g["metric"],
                     "value": g["agreement"], "ci_low": g["ci_low"], "ci_high": g["ci_high"], "n": g["pairs"],
                     "note": g["reason"] or f"{g['metric_ties']} metric tie(s) counted half"})
    return rows
