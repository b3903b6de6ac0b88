"""Agreement statistics as pure functions over arrays (no ORM, so each is tested on its own against published values).

Ratings come in long format: one (unit, value) pair per rating, where `unit` is any hashable item id.
Krippendorff's alpha only needs the values each unit received (who gave them does not matter), so
everything works from a units x values count matrix; that keeps a 1,000,000-rating study small.

Every statistic returns a result object whose `reason` is non-empty when the value is undefined (one
rater, no variation, nothing pairable...). An undefined statistic is never reported as a number.

References
  Krippendorff, K. (2011). Computing Krippendorff's Alpha-Reliability. Annenberg School for
    Communication, University of Pennsylvania. https://repository.upenn.edu/asc_papers/43
  Hayes, A. F., & Krippendorff, K. (2007). Answering the call for a standard reliability measure
    for coding data. Communication Methods and Measures, 1(1), 77-89.
  Krippendorff, K. (2006, rev. 2011). Algorithm for bootstrapping a distribution of alpha.
"""
from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import krippendorff
import numpy as np
from scipy import stats

LEVELS = ("nominal", "ordinal", "interval", "ratio")
CORRELATION_METHODS = ("spearman", "kendall", "pearson")
# A fixed default seed makes every report and command reproducible; it is recorded with each result.
DEFAULT_SEED = 20250101
ALPHA_BOOTSTRAP_METHODS = ("items", "hayes")
# Far beyond what a percentile CI needs (1,000-10,000); above it a typo would hold a worker or exhaust memory.
MAX_RESAMPLES = 100_000
ALPHA_BOOTSTRAP_NOTES = {
    "items": "percentile bootstrap over items: each resample draws the pairable items with replacement, "
             "all ratings of an item together, and recomputes alpha (coincidences and expected disagreement)",
    "hayes": "Hayes & Krippendorff (2007) bootstrap: draws pairs of values as if independent; it ignores that "
             "pairs inside one item are dependent, so its interval is too narrow (about 60 % coverage of a "
             "95 % interval in simulation) -- kept only for comparison with published figures",
}


class AgreementInputError(ValueError):
    """The data cannot be analysed as given (unknown level, value outside the domain...)."""


def bootstrap_params_check(*, resamples: int, confidence: float, alpha_min: float = 0.0,
                           seed: int | None = None) -> None:
    """Refuse bootstrap settings that could only crash or mislead (NaN, a negative seed, 2**70 resamples)."""
    if not 1 <= resamples <= MAX_RESAMPLES:
        raise AgreementInputError(f"resamples must be from 1 to {MAX_RESAMPLES}, not {resamples}")
    if not 0 < confidence < 1:  # also refuses NaN
        raise AgreementInputError("confidence must be between 0 and 1")
    if not math.isfinite(alpha_min):
        raise AgreementInputError(f"alpha_min must be a finite number, not {alpha_min}")
    if seed is not None and seed < 0:
        raise AgreementInputError(f"the seed must be 0 or more, not {seed}")


@dataclass
class AlphaResult:
    level: str
    alpha: float | None
    reason: str = ""
    units: int = 0  # units with two or more ratings (pairable units)
    pairable_values: int = 0  # n.. in Krippendorff's notation
    pairs: int = 0  # unordered pairs of values within units
    observed_disagreement: float | None = None
    expected_disagreement: float | None = None

    @property
    def defined(self) -> bool:
        return self.alpha is not None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class BootstrapResult:
    alpha: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    confidence: float = 0.95
    alpha_min: float = 0.667
    p_below_min: float | None = None
    resamples: int = 0
    draws: int = 0  # pairs drawn per resample (hayes) or items drawn per resample (items)
    seed: int | None = None
    reason: str = ""
    method: str = "items"
    method_note: str = ""
    undefined_resamples: int = 0  # resamples without variation (alpha = 1 - 0/0): left out, counted
    samples: np.ndarray | None = field(default=None, repr=False)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("samples")
        return out


@dataclass
class CorrelationResult:
    method: str
    r: float | None
    p_value: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    n: int = 0
    resamples: int = 0
    undefined_resamples: int = 0
    reason: str = ""
    interval: str = "percentile"  # Pearson: "bootstrap-t on Fisher's z" (as the report's), unless r is +-1

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SplitHalfResult:
    method: str
    r_half: float | None
    spearman_brown: float | None = None
    n: int = 0
    splits: int = 0
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class MeanResult:
    mean: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    n: int = 0
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- data shaping -------------------------------------------------------------------------------

def level_check(level: str) -> str:
    if level not in LEVELS:
        raise AgreementInputError(f"unknown level of measurement {level!r}; choose one of {', '.join(LEVELS)}")
    return level


def value_counts_from_long(
    *, units: Sequence[Hashable], values: Sequence[Any], domain: Sequence[Any]
) -> np.ndarray:
    """Units x domain count matrix from long-format ratings (one entry per rating)."""
    if len(units) != len(values):
        raise AgreementInputError(f"{len(units)} unit ids but {len(values)} values")
    if len(set(domain)) != len(domain):
        raise AgreementInputError("the value domain lists a value twice")
    value_idx = _domain_index(values, domain)
    unit_arr = np.asarray(units)
    if unit_arr.dtype == object:  # mixed ids: hash them one by one
        seen: dict[Hashable, int] = {}
        unit_idx = np.fromiter((seen.setdefault(u, len(seen)) for u in units), dtype=np.int64, count=len(units))
    else:
        unit_idx = np.unique(unit_arr, return_inverse=True)[1].reshape(-1)
    n_units = int(unit_idx.max()) + 1 if len(unit_idx) else 0
    counts = np.zeros((n_units, len(domain)), dtype=np.int64)
    np.add.at(counts, (unit_idx, value_idx), 1)
    return counts


def _domain_index(values: Sequence[Any], domain: Sequence[Any]) -> np.ndarray:
    """Position of every value in the domain; vectorised when both are numeric."""
    vals = np.asarray(values)
    dom = np.asarray(domain)
    if vals.dtype.kind in "iuf" and dom.dtype.kind in "iuf" and len(vals):
        order = np.argsort(dom, kind="stable")
        pos = np.clip(np.searchsorted(dom[order], vals), 0, len(dom) - 1)
        found = dom[order][pos] == vals
        if not found.all():
            bad = vals[~found][0]
            raise AgreementInputError(f"value {bad.item()!r} is not in the value domain {list(domain)!r}")
        return order[pos]
    index = {value: i for i, value in enumerate(domain)}
    try:
        return np.fromiter((index[v] for v in values), dtype=np.int64, count=len(values))
    except KeyError as exc:
        raise AgreementInputError(f"value {exc.args[0]!r} is not in the value domain {list(domain)!r}") from None


def value_counts_from_matrix(reliability_data: np.ndarray, *, domain: Sequence[float]) -> np.ndarray:
    """Units x domain counts from a raters x units matrix with NaN for a missing rating."""
    data = np.asarray(reliability_data, dtype=float)
    if data.ndim != 2:
        raise AgreementInputError("reliability data must be a 2-D raters x units matrix")
    present = ~np.isnan(data)
    units = np.nonzero(present)[1]
    return value_counts_from_long(units=units, values=data[present], domain=list(domain))


def coincidences(value_counts: np.ndarray) -> np.ndarray:
    """Krippendorff's observed coincidence matrix o_ck: each unit's m_u(m_u-1) ordered pairs,
    weighted 1/(m_u - 1) so that every pairable value contributes exactly one in total."""
    counts = np.asarray(value_counts, dtype=float)
    m = counts.sum(axis=1)
    pairable = m >= 2
    counts, m = counts[pairable], m[pairable]
    weighted = counts / (m - 1)[:, None]
    return weighted.T @ counts - np.diag(weighted.sum(axis=0))


def distances(*, domain: Sequence[Any], level: str, marginals: np.ndarray) -> np.ndarray:
    """Squared difference function delta^2_ck for the level (Krippendorff 2011, section E)."""
    level_check(level)
    size = len(domain)
    if level == "nominal":
        return 1.0 - np.eye(size)
    if level == "ordinal":
        # Ranks are the coincidence marginals n_g between c and k, minus half of each end.
        cum = np.cumsum(marginals)
        lo = np.minimum.outer(np.arange(size), np.arange(size))
        hi = np.maximum.outer(np.arange(size), np.arange(size))
        between = cum[hi] - cum[lo] + marginals[lo]
        return (between - (marginals[:, None] + marginals[None, :]) / 2.0) ** 2
    values = np.asarray(domain, dtype=float)
    diff = values[:, None] - values[None, :]
    if level == "interval":
        return diff**2
    total = values[:, None] + values[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(total == 0, 0.0, diff / np.where(total == 0, 1.0, total))
    return ratio**2


def _domain_check(domain: Sequence[Any], level: str) -> None:
    if len(domain) == 0:
        raise AgreementInputError("the value domain is empty")
    if level == "nominal":
        return
    try:
        numbers = [float(v) for v in domain]
    except (TypeError, ValueError):
        raise AgreementInputError(f"{level} level needs numeric values; the domain is {list(domain)!r}") from None
    if level in ("interval", "ratio") and any(math.isnan(x) or math.isinf(x) for x in numbers):
        raise AgreementInputError("the value domain holds NaN or infinity")
    if level == "ratio" and min(numbers) < 0:
        raise AgreementInputError("ratio level needs non-negative values (an absolute zero)")


# --- alpha --------------------------------------------------------------------------------------

@dataclass
class _Structure:
    """What the bootstrap needs: coincidences, differences and the expected disagreement."""

    o: np.ndarray
    delta: np.ndarray
    n_total: float
    d_o: float
    d_e: float
    pairs: int
    units: int


def _structure(value_counts: np.ndarray, domain: Sequence[Any], level: str) -> _Structure | str:
    counts = np.asarray(value_counts)
    if counts.ndim != 2 or counts.shape[1] != len(domain):
        raise AgreementInputError(f"value counts must be units x {len(domain)} (one column per domain value)")
    m = counts.sum(axis=1)
    pairable = m >= 2
    if not pairable.any():
        if m.sum() == 0:
            return "no ratings"
        return "no unit has two or more ratings, so no value is pairable (one rater per unit)"
    o = coincidences(counts)
    n_c = o.sum(axis=1)
    n_total = float(n_c.sum())
    delta = distances(domain=domain, level=level, marginals=n_c)
    d_o = float((o * delta).sum() / n_total)
    d_e = float((np.outer(n_c, n_c) * delta).sum() / (n_total * (n_total - 1)))
    if d_e <= 0:
        return "all pairable ratings are identical: the expected disagreement is 0, so alpha = 1 - 0/0"
    pm = m[pairable]
    return _Structure(o=o, delta=delta, n_total=n_total, d_o=d_o, d_e=d_e,
                      pairs=int((pm * (pm - 1) // 2).sum()), units=int(pairable.sum()))


def alpha_compute(*, value_counts: np.ndarray, domain: Sequence[Any], level: str) -> AlphaResult:
    """Krippendorff's alpha at an explicit level over an explicit ordered value domain."""
    level_check(level)
    _domain_check(domain, level)
    structure = _structure(value_counts, domain, level)
    counts = np.asarray(value_counts)
    m = counts.sum(axis=1)
    pm = m[m >= 2]
    # The sizes are stated even when alpha is undefined (e.g. every pairable rating identical).
    sizes = {"units": int(len(pm)), "pairable_values": int(pm.sum()), "pairs": int((pm * (pm - 1) // 2).sum())}
    if isinstance(structure, str):
        return AlphaResult(level=level, alpha=None, reason=structure, **sizes)
    pairable = counts[m >= 2]
    value = float(krippendorff.alpha(value_counts=pairable, value_domain=list(domain), level_of_measurement=level))
    return AlphaResult(level=level, alpha=value, observed_disagreement=structure.d_o,
                       expected_disagreement=structure.d_e, **sizes)


def alpha_bootstrap(
    *,
    value_counts: np.ndarray,
    domain: Sequence[Any],
    level: str,
    resamples: int = 1000,
    alpha_min: float = 0.667,
    confidence: float = 0.95,
    seed: int | None = DEFAULT_SEED,
    method: str = "items",
    max_draws: int | None = None,
    chunk_cells: int = 4_000_000,
) -> BootstrapResult:
    """Bootstrap distribution of alpha: percentile CI and P(alpha < alpha_min).

    `method="items"` (the default) resamples whole items, which is what the sampling design repeats:
    a new study draws new items, each with all of its ratings. `method="hayes"` is Hayes &
    Krippendorff (2007); see `_alpha_hayes_samples` and ALPHA_BOOTSTRAP_NOTES for why it is too narrow.
    """
    level_check(level)
    _domain_check(domain, level)
    if method not in ALPHA_BOOTSTRAP_METHODS:
        raise AgreementInputError(f"unknown bootstrap method {method!r}; choose one of "
                                  f"{', '.join(ALPHA_BOOTSTRAP_METHODS)}")
    bootstrap_params_check(resamples=resamples, confidence=confidence, alpha_min=alpha_min, seed=seed)
    base = {"confidence": confidence, "alpha_min": alpha_min, "seed": seed, "method": method,
            "method_note": ALPHA_BOOTSTRAP_NOTES[method]}
    structure = _structure(value_counts, domain, level)
    if isinstance(structure, str):
        return BootstrapResult(alpha=None, reason=structure, **base)
    point = alpha_compute(value_counts=value_counts, domain=domain, level=level).alpha
    rng = np.random.default_rng(seed)
    if method == "hayes":
        samples, draws = _alpha_hayes_samples(structure, domain, resamples, rng, max_draws)
    else:
        samples = _alpha_item_samples(np.asarray(value_counts), domain, level, resamples, rng, chunk_cells)
        draws = structure.units
    valid = samples[~np.isnan(samples)]
    undefined = int(len(samples) - len(valid))
    if not len(valid):
        return BootstrapResult(alpha=point, resamples=resamples, draws=draws, undefined_resamples=undefined,
                               reason="no resample had variation in its ratings", **base)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(valid, [tail, 1.0 - tail])
    return BootstrapResult(
        alpha=point, ci_low=float(low), ci_high=float(high), p_below_min=float(np.mean(valid < alpha_min)),
        resamples=resamples, draws=draws, undefined_resamples=undefined, samples=valid, **base,
    )


def _alpha_item_samples(
    counts: np.ndarray, domain: Sequence[Any], level: str, resamples: int, rng: np.random.Generator,
    chunk_cells: int,
) -> np.ndarray:
    """Alpha of `resamples` item bootstrap resamples, all at once.

    The coincidence matrix and the value marginals are sums over items, so a resample is a weight
    vector w (how often each item was drawn): o* = sum_u w_u o_u and n* = sum_u w_u n_u. Items with the
    same value counts contribute identically, so the weights are taken over the distinct count
    patterns -- drawing U items uniformly gives pattern counts ~ Multinomial(U, pattern share). A
    5-point scale with 10 raters has at most 1001 patterns, however many items there are. Alpha then
    needs two small matrix products per block; ordinal differences depend on the resample's
    marginals and are recomputed per resample (batched). Undefined resamples (D_e = 0) are NaN.
    """
    counts = counts[counts.sum(axis=1) >= 2]
    patterns, freq = np.unique(counts, axis=0, return_counts=True)
    weighted = _ItemWeights(patterns=patterns, domain=domain, level=level)
    items = int(freq.sum())
    share = freq / items
    block = max(1, min(resamples, chunk_cells // max(1, len(patterns))))
    out = np.empty(resamples)
    for start in range(0, resamples, block):
        stop = min(start + block, resamples)
        out[start:stop] = weighted.alpha(rng.multinomial(items, share, size=stop - start))
    return out


class _ItemWeights:
    """Alpha of any weighting of a fixed set of items (count patterns), vectorised over weightings."""

    def __init__(self, *, patterns: np.ndarray, domain: Sequence[Any], level: str) -> None:
        self.patterns = np.asarray(patterns, dtype=float)
        self.size = size = len(domain)
        m = self.patterns.sum(axis=1)
        # o_u[c, k] = n_uc (n_uk - [c == k]) / (m_u - 1): the unit's share of the coincidence matrix.
        contrib = (self.patterns[:, :, None] * self.patterns[:, None, :]
                   - self.patterns[:, :, None] * np.eye(size)[None]) / (m - 1)[:, None, None]
        self.contrib = contrib.reshape(len(self.patterns), size * size)
        self.fixed_delta = (None if level == "ordinal"
                            else distances(domain=domain, level=level, marginals=np.zeros(size)))

    def alpha(self, weights: np.ndarray) -> np.ndarray:
        """weights: weightings x patterns (draw counts). NaN where alpha is undefined (D_e = 0)."""
        weights = np.asarray(weights, dtype=float)
        rows, size = len(weights), self.size
        o = weights @ self.contrib
        marg = weights @ self.patterns
        total = marg.sum(axis=1)
        if self.fixed_delta is None:
            delta = _ordinal_distances_batched(marg)
        else:
            delta = np.broadcast_to(self.fixed_delta, (rows, size, size))
        d_o = (o * delta.reshape(rows, size * size)).sum(axis=1) / total
        d_e = np.einsum("bc,bck,bk->b", marg, delta, marg) / (total * (total - 1))
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(d_e > 0, 1.0 - d_o / np.where(d_e > 0, d_e, 1.0), np.nan)


def _ordinal_distances_batched(marginals: np.ndarray) -> np.ndarray:
    """`distances(level="ordinal")` for a batch of marginal vectors (resamples x values)."""
    size = marginals.shape[1]
    cum = np.cumsum(marginals, axis=1)
    lo = np.minimum.outer(np.arange(size), np.arange(size))
    hi = np.maximum.outer(np.arange(size), np.arange(size))
    between = cum[:, hi] - cum[:, lo] + marginals[:, lo]
    return (between - (marginals[:, :, None] + marginals[:, None, :]) / 2.0) ** 2


def _alpha_hayes_samples(
    structure: _Structure, domain: Sequence[Any], resamples: int, rng: np.random.Generator,
    max_draws: int | None,
) -> tuple[np.ndarray, int]:
    """Hayes & Krippendorff (2007) / Krippendorff's "Algorithm for bootstrapping a distribution of alpha".

    Each resample draws M pairs of values with replacement from the observed coincidences (cell
    probabilities o_ck / n.., the two off-diagonal cells merged) and keeps the expected disagreement
    fixed: alpha* = 1 - sum(delta^2 of the drawn pairs) / (M * D_e). M is the number of pairable
    pairs in the data; `max_draws` caps it like the "practical limit" of Krippendorff's note.
    Drawing M pairs from v(v+1)/2 cells is one multinomial draw per resample. Following the note,
    a resample whose pairs all fall into one diagonal cell counts as 0, and alpha* < -1 is set to -1.
    The pairs inside one item are not independent draws, so this interval is too narrow.
    """
    upper = np.triu_indices(len(domain))
    on_diagonal = upper[0] == upper[1]
    probs = np.where(on_diagonal, 1.0, 2.0) * structure.o[upper] / structure.n_total
    probs = np.clip(probs, 0.0, None)
    probs /= probs.sum()
    cell_delta = structure.delta[upper]
    draws = structure.pairs if max_draws is None else max(1, min(max_draws, structure.pairs))
    picked = rng.multinomial(draws, probs, size=resamples)
    samples = 1.0 - (picked @ cell_delta) / (draws * structure.d_e)
    no_variation = (picked[:, on_diagonal] == draws).any(axis=1)
    samples[no_variation] = 0.0
    np.maximum(samples, -1.0, out=samples)
    return samples, draws


# --- per-item aggregates ------------------------------------------------------------------------

def item_aggregates(*, units: Sequence[Hashable], values: Sequence[float]) -> dict[str, np.ndarray]:
    """Per-unit rater count, mean and median, units in sorted order of their ids."""
    vals = np.asarray(values, dtype=float)
    if len(units) != len(vals):
        raise AgreementInputError(f"{len(units)} unit ids but {len(vals)} values")
    if np.isnan(vals).any():
        raise AgreementInputError("ratings contain NaN")
    ids, inverse = np.unique(np.asarray(units), return_inverse=True)
    count = np.bincount(inverse, minlength=len(ids))
    mean = np.bincount(inverse, weights=vals, minlength=len(ids)) / np.maximum(count, 1)
    order = np.lexsort((vals, inverse))
    sorted_vals = vals[order]
    starts = np.concatenate([[0], np.cumsum(count)[:-1]])
    lo = sorted_vals[starts + (count - 1) // 2] if len(ids) else np.zeros(0)
    hi = sorted_vals[starts + count // 2] if len(ids) else np.zeros(0)
    return {"unit": ids, "count": count, "mean": mean, "median": (lo + hi) / 2.0}


# --- correlations -------------------------------------------------------------------------------

def _rowwise_pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    xc = x - x.mean(axis=1, keepdims=True)
    yc = y - y.mean(axis=1, keepdims=True)
    denom = np.sqrt((xc**2).sum(axis=1) * (yc**2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (xc * yc).sum(axis=1) / np.where(denom > 0, denom, 1.0), np.nan)


KENDALL_PAIR_MATRIX_MAX_ITEMS = 3000  # three n x n float32 matrices: 108 MB at this size


def _kendall_resampled(x: np.ndarray, y: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Kendall's tau-b (scipy's variant) of every bootstrap resample x[idx[b]], y[idx[b]].

    A resample only repeats original items, so with w = how often each item was drawn:
      concordant - discordant = 1/2 w' S w        S_ij = sign(x_i - x_j) * sign(y_i - y_j)
      pairs tied in x         = 1/2 (w' T w - n)  T_ij = [x_i == x_j] (a repeated item ties itself)
    Three n x n matrices and one matrix product per block replace an O(n log n) scipy call per
    resample. Above KENDALL_PAIR_MATRIX_MAX_ITEMS items the matrices get too big and scipy loops.
    """
    rows, n = idx.shape
    if n > KENDALL_PAIR_MATRIX_MAX_ITEMS:
        return np.array([stats.kendalltau(x[i], y[i]).statistic for i in idx])
    # float32 is exact here: every entry and sum is an integer below 2**24 at this size.
    sign_x = np.sign(x[:, None] - x[None, :]).astype(np.float32)
    sign_y = np.sign(y[:, None] - y[None, :]).astype(np.float32)
    concord = sign_x * sign_y
    tie_x = (sign_x == 0).astype(np.float32)
    tie_y = (sign_y == 0).astype(np.float32)
    w = draw_counts(idx, dtype=np.float32)
    pairs = n * (n - 1) / 2

    def quad(matrix: np.ndarray) -> np.ndarray:
        return ((w @ matrix) * w).sum(axis=1, dtype=np.float64)

    score = quad(concord) / 2
    ties_x = (quad(tie_x) - n) / 2
    ties_y = (quad(tie_y) - n) / 2
    denom = np.sqrt((pairs - ties_x) * (pairs - ties_y))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, score / np.where(denom > 0, denom, 1.0), np.nan)


def _point_correlation(method: str, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    if method == "pearson":
        res = stats.pearsonr(x, y)
    elif method == "spearman":
        res = stats.spearmanr(x, y)
    else:
        res = stats.kendalltau(x, y)
    return float(res.statistic), float(res.pvalue)


def correlation_bootstrap(
    *,
    x: Sequence[float],
    y: Sequence[float],
    method: str,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int | None = None,
    chunk: int = 200,
) -> CorrelationResult:
    """Correlation between paired per-item scores with a bootstrap CI over items: for Pearson the report's
    bootstrap-t on Fisher's z (annotations/metaeval.py; the percentile interval undercovers at ~100 items),
    for Spearman and Kendall the percentile interval.

    All three are computed for a block of resamples at once: Pearson row-wise, Spearman as Pearson
    on per-row ranks, Kendall's tau-b from pair matrices weighted by draw counts (`_kendall_resampled`).
    """
    if method not in CORRELATION_METHODS:
        raise AgreementInputError(f"unknown correlation {method!r}; choose one of {', '.join(CORRELATION_METHODS)}")
    xa, ya = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if xa.shape != ya.shape or xa.ndim != 1:
        raise AgreementInputError("x and y must be 1-D and of equal length")
    keep = ~(np.isnan(xa) | np.isnan(ya))
    xa, ya = xa[keep], ya[keep]
    n = len(xa)
    if n < 3:
        return CorrelationResult(method=method, r=None, n=n, reason=f"only {n} paired item(s); need at least 3")
    if np.ptp(xa) == 0 or np.ptp(ya) == 0:
        which = "automatic scores" if np.ptp(xa) == 0 else "human ratings"
        return CorrelationResult(method=method, r=None, n=n, reason=f"no variation in the {which}")
    r, p = _point_correlation(method, xa, ya)
    rng = np.random.default_rng(seed)
    boot = np.empty(resamples)
    se_boot = np.empty(resamples)  # Pearson: each resample's influence-function standard error
    for start in range(0, resamples, chunk):
        stop = min(start + chunk, resamples)
        idx = rng.integers(0, n, size=(stop - start, n))
        if method == "pearson":
            boot[start:stop], se_boot[start:stop] = _pearson_resampled(xa, ya, idx)
        elif method == "kendall":
            boot[start:stop] = _kendall_resampled(xa, ya, idx)
        else:
            bx, by = xa[idx], ya[idx]
            if method == "spearman":
                bx, by = stats.rankdata(bx, axis=1), stats.rankdata(by, axis=1)
            boot[start:stop] = _rowwise_pearson(bx, by)
    valid = boot[~np.isnan(boot)]
    tail = (1.0 - confidence) / 2.0
    low, high = (np.quantile(valid, [tail, 1.0 - tail]) if len(valid) else (np.nan, np.nan))
    interval = "percentile"
    if method == "pearson":
        influence = pearson_influence(xa, ya)[1]
        ci = fisher_t_interval(r=float(r), se=math.sqrt(np.mean(influence**2) / n), samples=boot,
                                se_samples=se_boot, confidence=confidence)
        if ci is not None:
            (low, high), interval = ci, "bootstrap-t on Fisher's z"
    return CorrelationResult(
        method=method, r=r, p_value=p, ci_low=_finite(low), ci_high=_finite(high), n=n, resamples=resamples,
        undefined_resamples=int(resamples - len(valid)), interval=interval,
    )


# --- Resampling helpers: order statistics, Pearson's influence function, bootstrap-t intervals, draw counts
# (also used by the report's meta-evaluation, annotations/metaeval.py) ------------------------------------

def order_index(count: int, tail: float) -> int:
    """0-based index of the smallest sample that bounds a `tail` share, by the (B + 1) rule of Davison &
    Hinkley (1997, 5.2): the same rule turns counts into p-values (`metaeval._percentile_p`, `studentized`), so an
    interval excludes a value exactly when the p of that value is below 2 * tail."""
    return min(max(math.ceil(tail * (count + 1)) - 2, 0), count - 1)


def standardise(v: np.ndarray, weights: np.ndarray, total: np.ndarray) -> np.ndarray:
    """(v - mean) / SD along the last axis, both weighted by how often each item was drawn (1/n SD); NaN
    where the drawn values do not vary (beyond rounding of the weighted mean)."""
    mean = (weights * v).sum(axis=-1, keepdims=True) / total
    centred = v - mean
    sd = np.sqrt((weights * centred**2).sum(axis=-1, keepdims=True) / total)
    flat = sd <= 1e-12 * np.maximum(np.abs(mean), 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return centred / np.where(flat, np.nan, sd)


def pearson_influence(
    x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Pearson's r along the last axis and each item's empirical influence on it (one row or many;
    `weights`: how often each item was drawn into a resample): IF_i = zx_i zy_i - r (zx_i^2 + zy_i^2) / 2,
    z standardised with the 1/n SD. Var(r) ~ mean(IF^2) / n holds without normality or equal error
    variances (the nonparametric delta method; Davison & Hinkley 1997, 2.7.2), which a mean over a
    varying number of biased raters does not have. No variation: NaN."""
    w = np.ones(np.broadcast_shapes(x.shape, y.shape)) if weights is None else weights
    total = w.sum(axis=-1, keepdims=True)
    zx, zy = standardise(x, w, total), standardise(y, w, total)
    r = (w * zx * zy).sum(axis=-1) / total[..., 0]
    return r, zx * zy - r[..., None] * (zx**2 + zy**2) / 2


def studentized(
    *, observed: float, se: float, samples: np.ndarray, se_samples: np.ndarray,
) -> tuple[np.ndarray, float] | None:
    """Bootstrap-t: t* = (theta* - theta) / se* of every valid resample, and t = theta / se of H0: theta = 0;
    None when a standard error is 0 (nothing to studentize by)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        t = (samples - observed) / se_samples
    t = t[np.isfinite(t)]
    if not len(t) or not se > 0:
        return None
    return t, observed / se


def fisher_t_interval(
    *, r: float, se: float, samples: np.ndarray, se_samples: np.ndarray, confidence: float,
) -> list[float] | None:
    """Bootstrap-t interval of a correlation on Fisher's z, back-transformed (None: fall back to percentile)."""
    if not -1 < r < 1:
        return None
    with np.errstate(invalid="ignore", divide="ignore"):
        student = studentized(observed=math.atanh(r), se=se / (1 - r**2), samples=np.arctanh(samples),
                              se_samples=se_samples / (1 - samples**2))
    if student is None:
        return None
    t = np.sort(student[0])
    low = order_index(len(t), (1 - confidence) / 2)
    se_z = se / (1 - r**2)
    return [math.tanh(math.atanh(r) - t[len(t) - 1 - low] * se_z), math.tanh(math.atanh(r) - t[low] * se_z)]


def draw_counts(idx: np.ndarray, dtype: type = float) -> np.ndarray:
    """How often each of n items was drawn into each resample: rows of item indices (resamples, n) -> counts
    of the same shape, so resampled statistics become weighted sums over the original items."""
    rows, n = idx.shape
    return np.bincount((idx + n * np.arange(rows)[:, None]).ravel(), minlength=rows * n).reshape(rows, n).astype(dtype)


def _pearson_resampled(x: np.ndarray, y: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pearson's r and its influence-function standard error in each resample (rows of item indices)."""
    n = idx.shape[1]
    weights = draw_counts(idx)
    r, influence = pearson_influence(x, y, weights)
    return r, np.sqrt((weights * influence**2).sum(axis=1) / n / n)


def split_half(
    *,
    units: Sequence[Hashable],
    values: Sequence[float],
    method: str = "spearman",
    splits: int = 200,
    seed: int | None = None,
) -> SplitHalfResult:
    """Human-human split-half correlation: the ceiling an automatic metric could reach.

    For each random split every unit's ratings are shuffled and halved (the odd rating goes to the
    second half); the two half-means are correlated across units and r is averaged over splits.
    The Spearman-Brown correction r_sb = 2r / (1 + r) then estimates the reliability of the mean
    of all raters, the ceiling for a metric compared against that mean.
    """
    if method not in ("pearson", "spearman"):
        raise AgreementInputError("split-half is defined here for pearson and spearman")
    vals = np.asarray(values, dtype=float)
    ids, inverse = np.unique(np.asarray(units), return_inverse=True)
    count = np.bincount(inverse, minlength=len(ids))
    keep_units = count >= 2
    n = int(keep_units.sum())
    if n < 3:
        return SplitHalfResult(method=method, r_half=None, n=n,
                               reason=f"only {n} item(s) have two or more ratings; need at least 3")
    rows = keep_units[inverse]
    inverse, vals = np.unique(inverse[rows], return_inverse=True)[1], vals[rows]
    # Canonical order (by unit, then value) before the random splits: the result depends only on each
    # unit's ratings, not on the order the database happened to return them in.
    canonical = np.lexsort((vals, inverse))
    inverse, vals = inverse[canonical], vals[canonical]
    count = np.bincount(inverse)
    starts = np.concatenate([[0], np.cumsum(count)[:-1]])
    rng = np.random.default_rng(seed)
    halves = np.empty((2, splits, n))
    for s in range(splits):
        order = np.lexsort((rng.random(len(vals)), inverse))
        unit_of = inverse[order]
        first = np.arange(len(vals)) - starts[unit_of] < count[unit_of] // 2
        halves[0, s] = np.bincount(unit_of[first], weights=vals[order][first], minlength=n) / (count // 2)
        halves[1, s] = np.bincount(unit_of[~first], weights=vals[order][~first], minlength=n) / (count - count // 2)
    if method == "spearman":
        halves = stats.rankdata(halves, axis=2)
    rs = _rowwise_pearson(halves[0], halves[1])
    rs = rs[~np.isnan(rs)]  # a split with no variation in a half has no correlation
    if not len(rs):
        return SplitHalfResult(method=method, r_half=None, n=n, splits=splits,
                               reason="no variation between half-means in any split")
    r = float(np.mean(rs))
    sb = 2 * r / (1 + r) if r > -1 else None
    return SplitHalfResult(method=method, r_half=r, spearman_brown=sb, n=n, splits=len(rs))


def mean_interval(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float] | None:
    """Student's t interval of a mean, mean +- t(n-1) s / sqrt(n); None below 2 values. Used for per-model mean ratings and the within-sample mean tau:
    the percentile bootstrap of a mean is too narrow by sqrt((n-1)/n) and a normal quantile, and covered
    87.5-88 % at 10 items, 90-91 % at 20 and 92.5-94 % at 30-60 (benchmarks/ci_coverage_more.py)."""
    vals = np.asarray(values, dtype=float)
    n = len(vals)
    if n < 2:
        return None
    half = float(stats.t.ppf(1 - (1 - confidence) / 2, n - 1)) * float(vals.std(ddof=1)) / math.sqrt(n)
    centre = float(vals.mean())
    return centre - half, centre + half


def mean_bootstrap(
    *, values: Sequence[float], resamples: int = 1000, confidence: float = 0.95, seed: int | None = None
) -> MeanResult:
    """Mean with its CI (per-model mean ratings over items). The name is kept for callers; the interval
    is now Student's t (`mean_interval`), which holds 95 % from 10 items on where the percentile bootstrap
    it replaces did not; `resamples` and `seed` are accepted and unused."""
    vals = np.asarray(values, dtype=float)
    vals = vals[~np.isnan(vals)]
    if len(vals) == 0:
        return MeanResult(mean=None, reason="no values")
    if len(vals) == 1:
        return MeanResult(mean=float(vals[0]), n=1, reason="one value: no confidence interval")
    low, high = mean_interval(vals, confidence)
    return MeanResult(mean=float(vals.mean()), ci_low=low, ci_high=high, n=len(vals))


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None
