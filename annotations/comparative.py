"""Comparative human judgments: best–worst scaling (BWS) and pairwise designs and their scores.

Pure functions over plain Python values and arrays (no ORM, so each is tested on its own).

A *unit* is what one judgment is about: a tuple of descriptions of the same sample (4 for BWS, 2 for
pairwise). A *choice* is one annotator's answer on one unit: the best and the worst description (BWS),
or the preferred and the other one (pairwise; both None for "equally good").

- `design_generate` builds the units from a seed: every description in about the same number of units
  (Kiritchenko & Mohammad 2016/2017: about 2N 4-tuples for N items, each item in ~8 tuples), no description
  twice in a unit, units drawn within one sample, samples with too few descriptions reported, never padded.
- `counting_scores`: %best − %worst per description (K&M's counting procedure), in [−1, 1].
- `bradley_terry_scores`: Bradley–Terry log-strengths fitted with `choix` (a maintained library) on the
  pairwise choices, or on the pairs a BWS choice implies (best beats every other shown description, every
  other description beats the worst: 5 pairs for a 4-tuple). Units of different samples share no
  description, so each sample is its own comparison graph and is fitted (and centred) on its own.
- every score has a CI over units (counting: Student's t of the ratio estimator, `_ratio_t_interval`;
  Bradley–Terry: percentile bootstrap): the units of each sample are resampled with all of
  their choices together (stratified by sample, so every sample keeps its number of units).
- `system_scores`: per system (LLM config × prompt) — pooled counting score, and a Bradley–Terry fit on
  systems (each description pair judged between two systems is a comparison of the systems, as Chatbot
  Arena does for models); their CIs resample whole samples (faces are random for a system's score).
- `split_half`: K&M's split-half reliability — the choices of each unit are split at random into two
  halves, each half is scored, the two score vectors are correlated, Spearman–Brown corrects for halving,
  and r is averaged over many random splits.
- `choice_agreement`: share of judged pairs that a metric orders the same way as the human choice.

References
  Kiritchenko, S., & Mohammad, S. M. (2017). Best-Worst Scaling More Reliable than Rating Scales: A Case
    Study on Sentiment Intensity Annotation. ACL 2017 (P17-2074).
  Kiritchenko, S., & Mohammad, S. M. (2016). Capturing Reliable Fine-Grained Sentiment Associations by
    Crowdsourcing and Best-Worst Scaling. NAACL 2016.
  Bradley, R. A., & Terry, M. E. (1952). Rank analysis of incomplete block designs. Biometrika 39.
  Maystre, L., & Grossglauser, M. (2015). Fast and accurate inference of Plackett–Luce models (choix's ILSR).
  Chiang, W.-L. et al. (2024). Chatbot Arena: An Open Platform for Evaluating LLMs by Human Preference.
"""
from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from itertools import combinations
from typing import Any

import choix
import numpy as np
from scipy import sparse, stats

from .agreement import SplitHalfResult

BWS_SIZE = 4
PAIR_SIZE = 2
KM_APPEARANCES = 8  # K&M: 2N 4-tuples for N items puts each item in 8 tuples
BT_PRIOR = 0.5  # pseudo-wins each way for every pair of a sample: keeps an item that never lost finite
METHODS = ("counting", "bradley_terry")
_ALL_COMBINATIONS_LIMIT = 20000  # enumerate unused tuples only while that is cheap


class ComparativeInputError(ValueError):
    """The choices or the design request cannot be used as given; the message says which one and why."""


# --- design ----------------------------------------------------------------------------------------

@dataclass
class DesignUnit:
    group: Hashable
    items: tuple[Hashable, ...]


@dataclass
class Design:
    size: int
    appearances_target: int
    seed: int
    units: list[DesignUnit] = field(default_factory=list)
    appearances: dict[Hashable, int] = field(default_factory=dict)
    # samples left out because they have fewer descriptions than the unit size: group -> descriptions
    short_groups: dict[Hashable, int] = field(default_factory=dict)
    # samples with fewer distinct tuples than the target asks: every distinct tuple is used once
    capped_groups: dict[Hashable, int] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        counts = list(self.appearances.values())
        return {
            "size": self.size, "units": len(self.units), "descriptions": len(counts), "seed": self.seed,
            "appearances_target": self.appearances_target,
            "appearances_min": min(counts) if counts else 0, "appearances_max": max(counts) if counts else 0,
            "short_groups": len(self.short_groups), "capped_groups": len(self.capped_groups),
        }


def _stable_sorted(values: Iterable[Hashable]) -> list[Hashable]:
    # The design must not depend on the order a query returned the rows in.
    return sorted(values, key=lambda v: (type(v).__name__, str(v)))


def _group_tuples(
    items: list[Hashable], *, size: int, target: int, rng: np.random.Generator
) -> list[tuple[Hashable, ...]]:
    """`target` distinct tuples of `size` items; appearance counts never differ by more than one.

    Greedy: each tuple takes the least-used items (so the spread of counts stays ≤ 1); among items tied
    at the boundary count it prefers those that met the already chosen members least often, so the same
    pairs do not keep meeting. Ties are broken by the seeded generator.
    """
    m = len(items)
    if target >= math.comb(m, size):
        chosen = [tuple(c) for c in combinations(range(m), size)]
        order = rng.permutation(len(chosen))
        return [tuple(items[i] for i in rng.permutation(chosen[k])) for k in order]
    counts = np.zeros(m, dtype=int)
    met = np.zeros((m, m), dtype=int)
    used: set[frozenset[int]] = set()
    out: list[tuple[Hashable, ...]] = []
    for _ in range(target):
        pick: list[int] | None = None
        for _attempt in range(24):
            noise = rng.random(m)
            ranked = np.lexsort((noise, counts))
            boundary = counts[ranked[size - 1]]
            picked = [int(i) for i in ranked if counts[i] < boundary]
            pool = [int(i) for i in ranked if counts[i] == boundary]
            while len(picked) < size:
                cost = [met[i, picked].sum() + noise[i] * 0.5 for i in pool]
                best = pool.pop(int(np.argmin(cost)))
                picked.append(best)
            if frozenset(picked) not in used:
                pick = picked
                break
        if pick is None:
            pick = _unused_tuple(m=m, size=size, used=used, counts=counts, rng=rng)
        used.add(frozenset(pick))
        counts[pick] += 1
        for a, b in combinations(pick, 2):
            met[a, b] += 1
            met[b, a] += 1
        out.append(tuple(items[i] for i in rng.permutation(pick)))
    return out


def _unused_tuple(
    *, m: int, size: int, used: set[frozenset[int]], counts: np.ndarray, rng: np.random.Generator
) -> list[int]:
    if math.comb(m, size) <= _ALL_COMBINATIONS_LIMIT:
        free = [c for c in combinations(range(m), size) if frozenset(c) not in used]
        load = np.array([counts[list(c)].sum() for c in free], dtype=float) + rng.random(len(free)) * 0.5
        return list(free[int(np.argmin(load))])
    # Very large samples: a random tuple is a repeat with negligible probability.
    return [int(i) for i in rng.choice(m, size=size, replace=False)]


def design_generate(
    *,
    groups: Mapping[Hashable, Sequence[Hashable]],
    size: int = BWS_SIZE,
    appearances: int = KM_APPEARANCES,
    seed: int = 0,
) -> Design:
    """Units for a BWS (size 4) or pairwise (size 2) study, the same for the same seed and input.

    `groups` maps a sample to its descriptions; every unit holds descriptions of one sample. A sample
    with m ≥ size descriptions gets round(m × appearances / size) distinct units (K&M's 2N 4-tuples when
    appearances = 8), or all C(m, size) of them when that is fewer (reported in `capped_groups`).
    """
    if size < 2:
        raise ComparativeInputError(f"a unit needs at least 2 descriptions (size {size})")
    if appearances < 1:
        raise ComparativeInputError(f"appearances per description must be at least 1 (got {appearances})")
    rng = np.random.default_rng(seed)
    design = Design(size=size, appearances_target=appearances, seed=seed)
    seen: set[Hashable] = set()
    for group in _stable_sorted(groups):
        items = _stable_sorted(set(groups[group]))
        if len(items) != len(groups[group]):
            raise ComparativeInputError(f"sample {group!r} lists a description twice")
        overlap = seen.intersection(items)
        if overlap:
            raise ComparativeInputError(f"description {next(iter(overlap))!r} belongs to two samples")
        seen.update(items)
        if len(items) < size:
            design.short_groups[group] = len(items)
            continue
        target = max(1, round(len(items) * appearances / size))
        possible = math.comb(len(items), size)
        if target > possible:
            design.capped_groups[group] = possible
        for unit in _group_tuples(items, size=size, target=target, rng=rng):
            design.units.append(DesignUnit(group=group, items=unit))
            for item in unit:
                design.appearances[item] = design.appearances.get(item, 0) + 1
    return design


# --- choices -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Choice:
    """One annotator's answer on one unit. Pairwise: best = preferred, worst = the other; both None = tie."""

    unit: Hashable
    shown: tuple[Hashable, ...]
    best: Hashable | None
    worst: Hashable | None
    annotator: Hashable | None = None


@dataclass
class _Compiled:
    """Choices as arrays: one row per choice, item indices into `items`, -1 for none."""

    items: list[Hashable]
    group_of_item: np.ndarray
    groups: list[Hashable]
    units: list[Hashable]
    unit_of: np.ndarray  # choice -> unit index
    group_of_unit: np.ndarray
    shown: np.ndarray  # choices × max size, -1 padded
    best: np.ndarray
    worst: np.ndarray

    @property
    def n_items(self) -> int:
        return len(self.items)


def choices_compile(
    choices: Sequence[Choice], *, groups: Mapping[Hashable, Hashable] | None = None
) -> _Compiled:
    """Check the choices and index them. `groups` maps a description to its sample (None: one sample)."""
    if not choices:
        raise ComparativeInputError("no choices to score")
    item_index: dict[Hashable, int] = {}
    unit_index: dict[Hashable, int] = {}
    unit_sets: list[frozenset[Hashable]] = []
    width = max(len(c.shown) for c in choices)
    shown = np.full((len(choices), width), -1, dtype=int)
    best = np.full(len(choices), -1, dtype=int)
    worst = np.full(len(choices), -1, dtype=int)
    unit_of = np.empty(len(choices), dtype=int)
    for row, choice in enumerate(choices):
        where = f"choice {row + 1} (unit {choice.unit!r})"
        if len(choice.shown) < 2:
            raise ComparativeInputError(f"{where}: a unit shows at least 2 descriptions")
        if len(set(choice.shown)) != len(choice.shown):
            raise ComparativeInputError(f"{where}: a description is shown twice")
        tie = choice.best is None and choice.worst is None
        if tie and len(choice.shown) != PAIR_SIZE:
            raise ComparativeInputError(f"{where}: only a pair can be judged equally good")
        if not tie:
            if choice.best not in choice.shown or choice.worst not in choice.shown:
                raise ComparativeInputError(f"{where}: best and worst must both be among the shown descriptions")
            if choice.best == choice.worst:
                raise ComparativeInputError(f"{where}: the best and the worst are the same description")
        key = frozenset(choice.shown)
        if choice.unit not in unit_index:
            unit_index[choice.unit] = len(unit_index)
            unit_sets.append(key)
        elif unit_sets[unit_index[choice.unit]] != key:
            raise ComparativeInputError(f"{where}: shows other descriptions than earlier choices on this unit")
        unit_of[row] = unit_index[choice.unit]
        for col, item in enumerate(choice.shown):
            shown[row, col] = item_index.setdefault(item, len(item_index))
        if not tie:
            best[row] = item_index[choice.best]
            worst[row] = item_index[choice.worst]
    items = list(item_index)
    group_names: dict[Hashable, int] = {}
    if groups is None:
        group_of_item = np.zeros(len(items), dtype=int)
        group_names[None] = 0
    else:
        missing = [item for item in items if item not in groups]
        if missing:
            raise ComparativeInputError(f"description {missing[0]!r} has no sample")
        group_of_item = np.array([group_names.setdefault(groups[item], len(group_names)) for item in items])
    group_of_unit = np.empty(len(unit_index), dtype=int)
    for u, key in enumerate(unit_sets):
        member_groups = {int(group_of_item[item_index[item]]) for item in key}
        if len(member_groups) != 1:
            raise ComparativeInputError(f"unit {list(unit_index)[u]!r} mixes descriptions of different samples")
        group_of_unit[u] = member_groups.pop()
    return _Compiled(
        items=items, group_of_item=group_of_item, groups=list(group_names), units=list(unit_index),
        unit_of=unit_of, group_of_unit=group_of_unit, shown=shown, best=best, worst=worst,
    )


def _count_matrices(data: _Compiled) -> tuple[sparse.csr_matrix, sparse.csr_matrix, sparse.csr_matrix]:
    """Per choice × item: shown (1), chosen best (1), chosen worst (1)."""
    rows, cols = np.nonzero(data.shown >= 0)
    n, j = data.n_items, len(data.best)
    shown = sparse.csr_matrix((np.ones(len(rows)), (rows, data.shown[rows, cols])), shape=(j, n))
    has = data.best >= 0
    best = sparse.csr_matrix((np.ones(has.sum()), (np.flatnonzero(has), data.best[has])), shape=(j, n))
    worst = sparse.csr_matrix((np.ones(has.sum()), (np.flatnonzero(has), data.worst[has])), shape=(j, n))
    return shown, best, worst


def implied_pairs(data: _Compiled) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(choice, winner, loser, is_tie) for every pair a choice implies.

    BWS: the best beats every other shown description and every other one beats the worst (for a
    4-tuple: 3 + 2 = 5 pairs; the pair between the two middle descriptions is unknown). Pairwise: the
    preferred beats the other; a tie is one pair with is_tie set (winner/loser in shown order).
    """
    rows: list[int] = []
    win: list[int] = []
    lose: list[int] = []
    tie: list[bool] = []
    for row in range(len(data.best)):
        shown = [int(i) for i in data.shown[row] if i >= 0]
        b, w = int(data.best[row]), int(data.worst[row])
        if b < 0:
            rows.append(row)
            win.append(shown[0])
            lose.append(shown[1])
            tie.append(True)
            continue
        for other in shown:
            if other != b:
                rows.append(row)
                win.append(b)
                lose.append(other)
                tie.append(False)
            if other not in (b, w):
                rows.append(row)
                win.append(other)
                lose.append(w)
                tie.append(False)
    return np.array(rows, dtype=int), np.array(win, dtype=int), np.array(lose, dtype=int), np.array(tie, dtype=bool)


# --- results -------------------------------------------------------------------------------------

@dataclass
class ScoreResult:
    method: str
    items: list[Hashable]
    scores: np.ndarray
    ci_low: np.ndarray | None = None
    ci_high: np.ndarray | None = None
    shown: np.ndarray | None = None  # how many choices showed each description
    best: np.ndarray | None = None
    worst: np.ndarray | None = None
    units: int = 0
    choices: int = 0
    resamples: int = 0
    confidence: float = 0.95
    seed: int | None = None
    reason: str = ""

    def score_of(self) -> dict[Hashable, float]:
        return {item: float(s) for item, s in zip(self.items, self.scores, strict=True)}

    def rows(self) -> list[dict[str, Any]]:
        out = []
        for i, item in enumerate(self.items):
            row: dict[str, Any] = {"item": item, "score": _finite(self.scores[i])}
            if self.ci_low is not None and self.ci_high is not None:
                row["ci"] = [_finite(self.ci_low[i]), _finite(self.ci_high[i])]
            for name in ("shown", "best", "worst"):
                values = getattr(self, name)
                if values is not None:
                    row[name] = int(values[i])
            out.append(row)
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "method": self.method, "units": self.units, "choices": self.choices, "resamples": self.resamples,
            "confidence": self.confidence, "seed": self.seed, "reason": self.reason, "items": self.rows(),
        }


@dataclass
class AgreementResult:
    metric: str
    agreement: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    pairs: int = 0
    metric_ties: int = 0
    resamples: int = 0
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _unit_weights(data: _Compiled, *, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """resamples × units counts: the units of each sample drawn with replacement within that sample."""
    n_units = len(data.units)
    weights = np.zeros((resamples, n_units))
    for g in np.unique(data.group_of_unit):
        members = np.flatnonzero(data.group_of_unit == g)
        draws = members[rng.integers(0, len(members), size=(resamples, len(members)))]
        np.add.at(weights, (np.arange(resamples)[:, None], draws), 1.0)
    return weights


def _ratio_t_interval(clusters: sparse.spmatrix, net: sparse.spmatrix, appear: sparse.spmatrix,
                      confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """Student's t interval of each column's ratio score sum(net) / sum(appear) over clusters (rows of
    `clusters` @ net: the units of a description, or the samples of a system), from the linearised cluster
    residuals (net_c - R appear_c) / mean(appear) with df = clusters that showed it - 1 (the usual ratio
    estimator; Cochran 1977, 6.4). NaN below 2 such clusters. It replaces the percentile bootstrap over the
    same clusters, which covered 91-93 % (descriptions over ~8 units, systems over 10-20 samples)."""
    net_c = sparse.csr_matrix(clusters @ net)
    app_c = sparse.csr_matrix(clusters @ appear)
    m = np.asarray((app_c > 0).sum(axis=0)).ravel().astype(float)
    total_app = np.asarray(app_c.sum(axis=0)).ravel()
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.asarray(net_c.sum(axis=0)).ravel() / total_app
        squares = (np.asarray(net_c.multiply(net_c).sum(axis=0)).ravel()
                   - 2 * ratio * np.asarray(net_c.multiply(app_c).sum(axis=0)).ravel()
                   + ratio**2 * np.asarray(app_c.multiply(app_c).sum(axis=0)).ravel())
        se = np.sqrt(np.maximum(squares, 0) / (total_app / m) ** 2 / (m * (m - 1)))
        half = stats.t.ppf(1 - (1 - confidence) / 2, m - 1) * se
    half = np.where(m >= 2, half, np.nan)
    return np.maximum(ratio - half, -1.0), np.minimum(ratio + half, 1.0)


def _cluster_matrix(cluster_of_choice: np.ndarray, clusters: int) -> sparse.csr_matrix:
    """clusters × choices indicator."""
    return sparse.csr_matrix((np.ones(len(cluster_of_choice)), (cluster_of_choice, np.arange(len(cluster_of_choice)))),
                             shape=(clusters, len(cluster_of_choice)))


def _sample_weights(data: _Compiled, *, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """resamples × units counts: whole samples drawn with replacement, each unit weighted by how often its
    sample was drawn (samples random: the per-system scores)."""
    from annotations.agreement import draw_counts

    n_groups = int(data.group_of_unit.max()) + 1 if len(data.group_of_unit) else 0
    drawn = draw_counts(rng.integers(0, n_groups, (resamples, n_groups))) if n_groups else np.zeros((resamples, 0))
    return drawn[:, data.group_of_unit]


def _interval(samples: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    tail = (1.0 - confidence) / 2.0
    with np.errstate(all="ignore"):
        low, high = np.nanquantile(samples, [tail, 1.0 - tail], axis=0)
    return low, high


def _result(data: _Compiled, *, method: str, scores: np.ndarray, confidence: float, seed: int | None) -> ScoreResult:
    shown, best, worst = _count_matrices(data)

    def per_item(matrix: sparse.csr_matrix) -> np.ndarray:
        return np.asarray(matrix.sum(axis=0)).ravel().astype(int)

    return ScoreResult(
        method=method, items=data.items, scores=scores, shown=per_item(shown), best=per_item(best),
        worst=per_item(worst), units=len(data.units), choices=len(data.best), confidence=confidence, seed=seed,
    )


# --- counting ------------------------------------------------------------------------------------

def _counting_from_weights(data: _Compiled, choice_weights: np.ndarray) -> np.ndarray:
    """weights (r × choices) → counting scores (r × items); NaN where a description was never shown."""
    shown, best, worst = _count_matrices(data)
    appear = (shown.T @ choice_weights.T).T
    net = ((best - worst).T @ choice_weights.T).T
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(appear > 0, net / np.where(appear > 0, appear, 1), np.nan)


def counting_scores(
    choices: Sequence[Choice],
    *,
    groups: Mapping[Hashable, Hashable] | None = None,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int | None = 0,
) -> ScoreResult:
    """%best − %worst per description (K&M's counting procedure), with a CI over units: Student's t of the
    ratio estimator (`_ratio_t_interval`), units being the clusters (all choices of a unit together)."""
    data = choices_compile(choices, groups=groups)
    scores = _counting_from_weights(data, np.ones((1, len(data.best))))[0]
    result = _result(data, method="counting", scores=scores, confidence=confidence, seed=seed)
    if resamples > 0:
        # Student's t over the units that showed each description (no resampling; `resamples` > 0 asks for it).
        shown, best, worst = _count_matrices(data)
        result.ci_low, result.ci_high = _ratio_t_interval(_cluster_matrix(data.unit_of, len(data.units)),
                                                          best - worst, shown, confidence)
    return result


# --- Bradley–Terry -------------------------------------------------------------------------------

def _bt_fit(n: int, win: np.ndarray, lose: np.ndarray, tie: np.ndarray, weight: np.ndarray,
            *, prior: float, initial: np.ndarray | None = None) -> np.ndarray:
    """Log-strengths (mean 0) by choix's ILSR; integer weights repeat a comparison, a tie is half a win each.

    choix takes unweighted (winner, loser) lists, so every comparison is entered twice and a tie once
    each way; with the data doubled, choix's `alpha` equals `prior` pseudo-wins each way per pair.
    """
    reps = np.round(weight).astype(int)
    decided = ~tie
    w_list = np.concatenate([np.repeat(win[decided], 2 * reps[decided]), np.repeat(win[tie], reps[tie]),
                             np.repeat(lose[tie], reps[tie])])
    l_list = np.concatenate([np.repeat(lose[decided], 2 * reps[decided]), np.repeat(lose[tie], reps[tie]),
                             np.repeat(win[tie], reps[tie])])
    if not len(w_list):
        return np.zeros(n)
    data = list(zip(w_list.tolist(), l_list.tolist(), strict=True))
    params = choix.ilsr_pairwise(n, data, alpha=prior, initial_params=initial, tol=1e-7)
    return params - params.mean()


def _bt_by_group(
    data: _Compiled, pairs: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], pair_weight: np.ndarray,
    *, prior: float, initial: np.ndarray | None = None,
) -> np.ndarray:
    """Fit each sample's comparison graph on its own; descriptions never compared stay NaN."""
    rows, win, lose, tie = pairs
    out = np.full(data.n_items, np.nan)
    pair_group = data.group_of_item[win]
    for g in np.unique(data.group_of_item):
        members = np.flatnonzero(data.group_of_item == g)
        sel = (pair_group == g) & (pair_weight > 0)
        if not sel.any():
            continue
        local = np.full(data.n_items, -1)
        local[members] = np.arange(len(members))
        compared = np.zeros(len(members), dtype=bool)
        compared[local[win[sel]]] = True
        compared[local[lose[sel]]] = True
        fitted = _bt_fit(len(members), local[win[sel]], local[lose[sel]], tie[sel], pair_weight[sel],
                         prior=prior, initial=None if initial is None else initial[members])
        out[members[compared]] = fitted[compared]
    return out


def bradley_terry_scores(
    choices: Sequence[Choice],
    *,
    groups: Mapping[Hashable, Hashable] | None = None,
    prior: float = BT_PRIOR,
    resamples: int = 200,
    confidence: float = 0.95,
    seed: int | None = 0,
) -> ScoreResult:
    """Bradley–Terry log-strength per description (centred within each sample), bootstrap CI over units.

    BWS choices enter as their implied pairs. `prior` adds that many pseudo-wins each way to every pair
    (a description that never lost would otherwise have an infinite strength).
    """
    if prior < 0:
        raise ComparativeInputError("the Bradley–Terry prior must be ≥ 0")
    data = choices_compile(choices, groups=groups)
    pairs = implied_pairs(data)
    scores = _bt_by_group(data, pairs, np.ones(len(pairs[0])), prior=prior)
    result = _result(data, method="bradley_terry", scores=scores, confidence=confidence, seed=seed)
    if resamples > 0:
        rng = np.random.default_rng(seed)
        unit_w = _unit_weights(data, resamples=resamples, rng=rng)
        start = np.nan_to_num(scores)
        boot = np.array([
            _bt_by_group(data, pairs, unit_w[r][data.unit_of[pairs[0]]], prior=prior, initial=start)
            for r in range(resamples)
        ])
        result.ci_low, result.ci_high = _interval(boot, confidence)
        result.resamples = resamples
    return result


def scores_compute(
    choices: Sequence[Choice], *, method: str, groups: Mapping[Hashable, Hashable] | None = None,
    resamples: int = 200, confidence: float = 0.95, seed: int | None = 0,
) -> ScoreResult:
    if method == "counting":
        return counting_scores(choices, groups=groups, resamples=resamples, confidence=confidence, seed=seed)
    if method == "bradley_terry":
        return bradley_terry_scores(choices, groups=groups, resamples=resamples, confidence=confidence, seed=seed)
    raise ComparativeInputError(f"unknown scoring method {method!r}; choose one of {', '.join(METHODS)}")


# --- per system ----------------------------------------------------------------------------------

@dataclass
class SystemScores:
    systems: list[Hashable]
    counting: np.ndarray
    counting_ci: tuple[np.ndarray, np.ndarray] | None
    bradley_terry: np.ndarray
    bradley_terry_ci: tuple[np.ndarray, np.ndarray] | None
    comparisons: np.ndarray  # decided or tied pairs each system took part in (between systems)
    resamples: int = 0
    seed: int | None = None

    def rows(self) -> list[dict[str, Any]]:
        out = []
        for i, system in enumerate(self.systems):
            row: dict[str, Any] = {
                "system": system, "counting": _finite(self.counting[i]),
                "bradley_terry": _finite(self.bradley_terry[i]), "comparisons": int(self.comparisons[i]),
            }
            if self.counting_ci is not None:
                row["counting_ci"] = [_finite(self.counting_ci[0][i]), _finite(self.counting_ci[1][i])]
            if self.bradley_terry_ci is not None:
                row["bradley_terry_ci"] = [_finite(self.bradley_terry_ci[0][i]),
                                           _finite(self.bradley_terry_ci[1][i])]
            out.append(row)
        return out


def system_scores(
    choices: Sequence[Choice],
    *,
    system_of: Mapping[Hashable, Hashable],
    groups: Mapping[Hashable, Hashable] | None = None,
    prior: float = BT_PRIOR,
    resamples: int = 500,
    confidence: float = 0.95,
    seed: int | None = 0,
    bradley_terry_ci: bool = True,
) -> SystemScores:
    """Per-system counting score (pooled %best − %worst) and a Bradley–Terry fit on systems, with CIs.

    A system's score is about its descriptions of faces in general, so the samples (faces) are the random
    unit: the CIs resample whole samples, each with all its units and choices (`_sample_weights`). Resampling
    units within fixed samples, as the per-description scores do, left out the variation between faces:
    that interval covered a system's population score in 50-72 % of simulated studies
    (benchmarks/ci_coverage_more.py, docs/reports.md). With one sample (or `groups` not given) the units
    are resampled, as before. `bradley_terry_ci=False` skips the Bradley–Terry
    resamples (one fit each; the coverage benchmark)."""
    data = choices_compile(choices, groups=groups)
    missing = [item for item in data.items if item not in system_of]
    if missing:
        raise ComparativeInputError(f"description {missing[0]!r} has no system")
    names: dict[Hashable, int] = {}
    sys_idx = np.array([names.setdefault(system_of[item], len(names)) for item in data.items], dtype=int)
    n_sys = len(names)
    to_sys = sparse.csr_matrix((np.ones(data.n_items), (np.arange(data.n_items), sys_idx)),
                               shape=(data.n_items, n_sys))
    shown, best, worst = _count_matrices(data)
    shown_s, net_s = shown @ to_sys, (best - worst) @ to_sys
    rows, win, lose, tie = implied_pairs(data)
    between = sys_idx[win] != sys_idx[lose]
    rows, s_win, s_lose, tie = rows[between], sys_idx[win[between]], sys_idx[lose[between]], tie[between]
    comparisons = np.bincount(s_win, minlength=n_sys) + np.bincount(s_lose, minlength=n_sys)

    def counting_of(weights: np.ndarray) -> np.ndarray:
        appear = (shown_s.T @ weights.T).T
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(appear > 0, (net_s.T @ weights.T).T / np.where(appear > 0, appear, 1), np.nan)

    def bt_of(pair_weight: np.ndarray, initial: np.ndarray | None = None) -> np.ndarray:
        if not len(s_win):
            return np.full(n_sys, np.nan)
        return _bt_fit(n_sys, s_win, s_lose, tie, pair_weight, prior=prior, initial=initial)

    counting = counting_of(np.ones((1, len(data.best))))[0]
    bt = bt_of(np.ones(len(s_win)))
    out = SystemScores(systems=list(names), counting=counting, counting_ci=None, bradley_terry=bt,
                       bradley_terry_ci=None, comparisons=comparisons, seed=seed)
    if resamples > 0:
        rng = np.random.default_rng(seed)
        # One sample (or samples not given): nothing to resample but its units, as before.
        weigh = _sample_weights if len(np.unique(data.group_of_unit)) > 1 else _unit_weights
        unit_w = weigh(data, resamples=resamples, rng=rng)
        cluster = data.group_of_unit[data.unit_of] if weigh is _sample_weights else data.unit_of
        # The counting score's CI: Student's t of the ratio estimator over the same clusters.
        out.counting_ci = _ratio_t_interval(_cluster_matrix(cluster, int(cluster.max()) + 1),
                                            sparse.csr_matrix(net_s), sparse.csr_matrix(shown_s), confidence)
        start = np.nan_to_num(bt)
        if bradley_terry_ci:
            out.bradley_terry_ci = _interval(
                np.array([bt_of(unit_w[r][data.unit_of[rows]], start) for r in range(resamples)]), confidence
            )
        out.resamples = resamples
    return out


# --- split-half reliability ----------------------------------------------------------------------

def _rowwise_r(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    x = x - x.mean(axis=1, keepdims=True)
    y = y - y.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (x * y).sum(axis=1) / np.sqrt((x * x).sum(axis=1) * (y * y).sum(axis=1))


def split_half(
    choices: Sequence[Choice],
    *,
    method: str = "counting",
    groups: Mapping[Hashable, Hashable] | None = None,
    correlation: str = "spearman",
    splits: int = 100,
    prior: float = BT_PRIOR,
    seed: int | None = 0,
) -> SplitHalfResult:
    """K&M split-half reliability of the scores, Spearman–Brown corrected, averaged over random splits.

    Each unit's choices are shuffled and halved (an odd one out goes to either half at random); units
    with a single choice cannot be split and are left out of both halves. `n` is the number of
    descriptions scored in both halves.
    """
    if method not in METHODS:
        raise ComparativeInputError(f"unknown scoring method {method!r}; choose one of {', '.join(METHODS)}")
    if correlation not in ("spearman", "pearson"):
        raise ComparativeInputError("split-half is defined here for spearman and pearson")
    # Canonical order before the seeded random splits: the same choices give the same figure whatever order
    # the database returned them in.
    choices = sorted(choices, key=lambda c: tuple(map(repr, (c.unit, c.shown, c.best, c.worst, c.annotator))))
    data = choices_compile(choices, groups=groups)
    per_unit = np.bincount(data.unit_of, minlength=len(data.units))
    usable = per_unit[data.unit_of] >= 2
    if usable.sum() == 0:
        return SplitHalfResult(method=correlation, r_half=None,
                               reason="no unit has two or more choices; a unit's choices cannot be split")
    rng = np.random.default_rng(seed)
    unit_of = data.unit_of
    count = per_unit[unit_of]
    halves = np.zeros((2, splits, len(unit_of)))
    for s in range(splits):
        order = np.lexsort((rng.random(len(unit_of)), unit_of))
        rank = np.empty(len(unit_of), dtype=int)
        starts = np.concatenate([[0], np.cumsum(per_unit)[:-1]])
        rank[order] = np.arange(len(unit_of)) - starts[unit_of[order]]
        odd_first = rng.random(len(data.units)) < 0.5
        cut = count // 2 + ((count % 2 == 1) & odd_first[unit_of])
        first = rank < cut
        halves[0, s] = first & usable
        halves[1, s] = ~first & usable
    if method == "counting":
        a = _counting_from_weights(data, halves[0])
        b = _counting_from_weights(data, halves[1])
    else:
        pairs = implied_pairs(data)
        a = np.array([_bt_by_group(data, pairs, halves[0, s][pairs[0]], prior=prior) for s in range(splits)])
        b = np.array([_bt_by_group(data, pairs, halves[1, s][pairs[0]], prior=prior) for s in range(splits)])
    both = np.all(np.isfinite(a) & np.isfinite(b), axis=0)
    n = int(both.sum())
    if n < 3:
        return SplitHalfResult(method=correlation, r_half=None, n=n,
                               reason=f"only {n} description(s) are scored in both halves; need at least 3")
    a, b = a[:, both], b[:, both]
    if correlation == "spearman":
        a, b = stats.rankdata(a, axis=1), stats.rankdata(b, axis=1)
    rs = _rowwise_r(a, b)
    rs = rs[np.isfinite(rs)]
    if not len(rs):
        return SplitHalfResult(method=correlation, r_half=None, n=n, splits=splits,
                               reason="no variation between the halves' scores in any split")
    r = float(np.mean(rs))
    sb = 2 * r / (1 + r) if r > -1 else None
    return SplitHalfResult(method=correlation, r_half=r, spearman_brown=sb, n=n, splits=len(rs))


# --- metric agreement with raw choices ------------------------------------------------------------

def choice_agreement(
    choices: Sequence[Choice],
    *,
    metric_scores: Mapping[Hashable, float],
    metric: str = "metric",
    groups: Mapping[Hashable, Hashable] | None = None,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int | None = 0,
) -> AgreementResult:
    """Share of judged pairs the metric orders as the annotator did, with a bootstrap CI over units.

    Pairs are those a choice decides (BWS implied pairs; pairwise preferences; ties between the two
    descriptions left out). A metric tie counts half, as in Kendall's τ-a style pairwise accuracy.
    Pairs with a description the metric did not score are left out.
    """
    data = choices_compile(choices, groups=groups)
    rows, win, lose, tie = implied_pairs(data)
    score = np.array([float(metric_scores.get(item, np.nan)) for item in data.items])
    keep = ~tie & np.isfinite(score[win]) & np.isfinite(score[lose])
    rows, win, lose = rows[keep], win[keep], lose[keep]
    if not len(rows):
        return AgreementResult(metric=metric, agreement=None, reason="no decided pair with metric scores on both")
    diff = score[win] - score[lose]
    hit = np.where(diff > 0, 1.0, np.where(diff < 0, 0.0, 0.5))
    result = AgreementResult(metric=metric, agreement=float(hit.mean()), pairs=len(hit),
                             metric_ties=int((diff == 0).sum()))
    if resamples > 0:
        unit_w = _unit_weights(data, resamples=resamples, rng=np.random.default_rng(seed))
        w = unit_w[:, data.unit_of[rows]]
        with np.errstate(invalid="ignore", divide="ignore"):
            boot = (w @ hit) / w.sum(axis=1)
        low, high = _interval(boot[:, None], confidence)
        result.ci_low, result.ci_high, result.resamples = float(low[0]), float(high[0]), resamples
    return result


def choice_contributions(choices: Sequence[Choice]) -> tuple[list[Hashable], list[str], list[float]]:
    """(description, rater, value) rows whose per-description mean is the counting score.

    Each description shown in a choice gets +1 (best / preferred), −1 (worst / other) or 0 (neither, or
    a tie); their mean over the choices that showed it is %best − %worst. This lets the rating-based
    meta-evaluation run on comparative data. The rater is (annotator, unit): an annotator meets one
    description in several units.
    """
    units: list[Hashable] = []
    raters: list[str] = []
    values: list[float] = []
    for choice in choices:
        for item in choice.shown:
            units.append(item)
            raters.append(f"{choice.annotator}:{choice.unit}")
            values.append(1.0 if item == choice.best else -1.0 if item == choice.worst else 0.0)
    return units, raters, values
