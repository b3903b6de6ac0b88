"""Comparative units (best–worst 4-tuples, pairs) of a study, built with the seeded design.

A unit is an Item whose `options` are descriptions of one sample; assignment, budgets, checks and
exclusions work on units exactly as on Likert items. The design (which descriptions meet in which
unit) is `annotations.comparative.design_generate`; the order an annotator sees is a per-annotator
shuffle, so a position carries no information about the system.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from inference.models import Generation

from ..comparative import BWS_SIZE, PAIR_SIZE, design_generate
from ..models import Item, Study, UnitOption
from .studies import StudyInvalid, _item_text


@dataclass(frozen=True)
class GoldUnit:
    """A check unit with a known answer: the first text is the known best, the last the known worst."""

    texts: tuple[str, ...]
    kind: str = Item.Kind.GOLD


def unit_size(study: Study) -> int:
    if study.kind == Study.Kind.BWS:
        return BWS_SIZE
    if study.kind == Study.Kind.PAIRWISE:
        return PAIR_SIZE
    raise StudyInvalid("a Likert study has no comparative units")


def gold_unit_parse(spec: str | Mapping[str, Any] | Sequence[str], *, size: int) -> GoldUnit:
    """Accept `BEST|...|WORST` (the command-line form), a list of texts, or `{"texts": [...], "kind"}`."""
    kind = Item.Kind.GOLD
    if isinstance(spec, str):
        texts = spec.split("|")
    elif isinstance(spec, Mapping):
        texts, kind = spec.get("texts") or [], spec.get("kind", kind)
    else:
        texts = list(spec)
    texts = [str(text).strip() for text in texts]
    if len(texts) != size:
        raise StudyInvalid(f"gold unit {spec!r}: needs exactly {size} descriptions, best first and worst last")
    if any(not text for text in texts) or len(set(texts)) != len(texts):
        raise StudyInvalid(f"gold unit {spec!r}: every description must be non-empty and different")
    if kind not in (Item.Kind.GOLD, Item.Kind.ATTENTION):
        raise StudyInvalid(f"gold unit kind {kind!r}: must be 'gold' or 'attention'")
    return GoldUnit(texts=tuple(texts), kind=kind)


def study_units_add(*, study: Study, generations: Iterable[Generation]) -> dict[str, Any]:
    """Create the study's units from its Generations, grouped by sample; returns the design summary.

    Samples with fewer descriptions than a unit holds are reported (never padded with another
    sample's descriptions or with repeats). The summary is stored in `study.selection["design"]`.
    """
    size = unit_size(study)
    if study.items.filter(kind=Item.Kind.NORMAL).exists():
        raise StudyInvalid("this study already has its units; a design is built once")
    by_id: dict[int, Generation] = {}
    groups: dict[int, list[int]] = {}
    for gen in generations:
        if _item_text(gen):
            by_id[gen.id] = gen
            groups.setdefault(gen.va_estimate.sample_id, []).append(gen.id)
    design = design_generate(groups=groups, size=size, appearances=study.unit_appearances, seed=study.design_seed)
    if not design.units:
        raise StudyInvalid(
            f"no sample has {size} or more selected descriptions, so no {study.get_kind_display()} unit can be "
            f"built (each unit shows descriptions of one face); select more LLM configs or prompts"
        )
    items = Item.objects.bulk_create([
        Item(study=study, kind=Item.Kind.NORMAL, sample_id=unit.group, text=f"{size} descriptions of one face")
        for unit in design.units
    ])
    UnitOption.objects.bulk_create([
        UnitOption(item=item, position=pos, generation=by_id[gen_id], text=_item_text(by_id[gen_id]))
        for item, unit in zip(items, design.units, strict=True)
        for pos, gen_id in enumerate(unit.items)
    ])
    summary = design.summary() | {
        "short_samples": {str(k): v for k, v in design.short_groups.items()},
        "capped_samples": {str(k): v for k, v in design.capped_groups.items()},
    }
    study.selection = dict(study.selection or {}) | {"design": summary}
    Study.objects.filter(pk=study.pk).update(selection=study.selection)
    return summary


def study_gold_units_add(*, study: Study, gold_units: Iterable[GoldUnit | Mapping[str, Any] | str]) -> int:
    """Add check units with a known best and worst; one with the same texts as an existing one is skipped."""
    size = unit_size(study)
    existing = {
        tuple(item.options.values_list("text", flat=True))
        for item in study.items.exclude(kind=Item.Kind.NORMAL).prefetch_related("options")
    }
    added = 0
    for raw in gold_units:
        gold = raw if isinstance(raw, GoldUnit) else gold_unit_parse(raw, size=size)
        if gold.texts in existing:
            continue
        item = Item.objects.create(study=study, kind=gold.kind, text=f"{size} descriptions (check unit)")
        UnitOption.objects.bulk_create([
            UnitOption(item=item, position=pos, text=text,
                       expected=(UnitOption.Expected.BEST if pos == 0 else
                                 UnitOption.Expected.WORST if pos == size - 1 else UnitOption.Expected.NONE))
            for pos, text in enumerate(gold.texts)
        ])
        existing.add(gold.texts)
        added += 1
    return added


def unit_display_order(*, seed: int, item_id: int, options: Sequence[UnitOption]) -> list[UnitOption]:
    """This annotator's order of a unit's descriptions: random per annotator and unit, stable on reload."""
    def key(option: UnitOption) -> bytes:
        return hashlib.blake2b(f"{seed}:{item_id}:{option.pk}".encode(), digest_size=8).digest()

    return sorted(options, key=key)
