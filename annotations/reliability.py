"""Reliability of the mean human rating, and the ceiling it puts on any metric's correlation with it.

Pure functions over arrays (no ORM, so each is tested on its own). Ratings come in long format
(unit, rater, value), as in `annotations.agreement`.

Two estimates of R, the reliability of an item's mean rating over its k raters:
  * split-half with Spearman-Brown (`agreement.split_half`, averaged over random splits, seeded);
  * ICC(2,k), Shrout & Fleiss (1979) case 2 (two-way random, average measures), with the F-based
    interval of Shrout & Fleiss / McGraw & Wong (1996). It needs a complete items x raters table.
    Crowd data are rarely complete: each item is rated by different people and some ratings are
    missing. Then raters are not crossed with items, which is Shrout & Fleiss's case 1, and the
    one-way ICC(1,k) is the estimator that matches the design: rater leniency is part of the error
    there, as it is in ICC(2,k)'s absolute agreement. Unequal numbers of ratings per item use the
    usual ANOVA average group size k0 = (N - sum k_i^2 / N) / (n - 1) (Searle 1971; Donner 1986),
    with the F interval at k0. The result says which model was used (`model`).

The ceiling: a metric m correlates with the mean human rating H at most sqrt(R) (classical test
theory: corr(m, H) = corr(m, T) * sqrt(R) <= sqrt(R), T the error-free item score). The
disattenuated correlation r / sqrt(R) estimates corr(m, T). Both are undefined when R <= 0 or fewer
than MIN_CEILING_ITEMS items qualify, and the result says so in words.

References
  Shrout, P. E., & Fleiss, J. L. (1979). Intraclass correlations: uses in assessing rater
    reliability. Psychological Bulletin, 86(2), 420-428.
  McGraw, K. O., & Wong, S. P. (1996). Forming inferences about some intraclass correlation
    coefficients. Psychological Methods, 1(1), 30-46.
  Spearman, C. (1910); Brown, W. (1910): the Spearman-Brown prophecy formula.
"""
from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats

from annotations import agreement as A

MIN_CEILING_ITEMS = 10


@dataclass
class IccResult:
    model: str  # "ICC(2,k)" (complete two-way table) or "ICC(1,k)" (raters not crossed / missing ratings)
    single: float | None  # one rater: ICC(2,1) or ICC(1,1)
    average: float | None  # the mean of k raters: ICC(2,k) or ICC(1,k)
    ci_low: float | None = None  # interval of `average`
    ci_high: float | None = None
    single_ci_low: float | None = None
    single_ci_high: float | None = None
    k: float = 0.0  # raters per item the average refers to (k0 when unequal)
    n: int = 0  # items
    confidence: float = 0.95
    method_note: str = ""
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def spearman_brown(*, reliability: float, factor: float) -> float:
    """Reliability of a mean over `factor` times as many raters (Spearman-Brown prophecy)."""
    return factor * reliability / (1 + (factor - 1) * reliability)


def icc_from_matrix(data: np.ndarray, *, confidence: float = 0.95) -> IccResult:
    """ICC(2,1) and ICC(2,k) from a complete items x raters matrix (Shrout & Fleiss 1979, case 2).

    Mean squares from the two-way ANOVA without replication: BMS (items), JMS (raters), EMS
    (residual). ICC(2,1) = (BMS - EMS) / (BMS + (k-1) EMS + k (JMS - EMS) / n) and
    ICC(2,k) = (BMS - EMS) / (BMS + (JMS - EMS) / n). The interval of ICC(2,1) uses the
    Satterthwaite degrees of freedom v (Shrout & Fleiss eq. 10; McGraw & Wong 1996, case 2A); the
    bounds of ICC(2,k) are the Spearman-Brown step-up of those, which is McGraw & Wong's formula.
    """
    x = np.asarray(data, dtype=float)
    note = "Shrout & Fleiss (1979) case 2, two-way random, absolute agreement; F interval (McGraw & Wong 1996)"
    if x.ndim != 2 or np.isnan(x).any():
        raise A.AgreementInputError("ICC(2,k) needs a complete items x raters matrix")
    n, k = x.shape
    if n < 3 or k < 2:
        return IccResult(model="ICC(2,k)", single=None, average=None, k=k, n=n, confidence=confidence,
                         method_note=note, reason=f"needs at least 3 items and 2 raters (have {n} x {k})")
    grand = x.mean()
    ss_rows = k * ((x.mean(axis=1) - grand) ** 2).sum()
    ss_cols = n * ((x.mean(axis=0) - grand) ** 2).sum()
    ss_err = ((x - grand) ** 2).sum() - ss_rows - ss_cols
    bms, jms = ss_rows / (n - 1), ss_cols / (k - 1)
    ems = ss_err / ((n - 1) * (k - 1))
    denom_single = bms + (k - 1) * ems + k * (jms - ems) / n
    denom_avg = bms + (jms - ems) / n
    if denom_single <= 0 or denom_avg <= 0 or bms == 0:
        return IccResult(model="ICC(2,k)", single=None, average=None, k=k, n=n, confidence=confidence,
                         method_note=note, reason="no variation between items")
    single = (bms - ems) / denom_single
    average = (bms - ems) / denom_avg
    low = high = None
    if ems > 0 and single < 1:
        # Satterthwaite degrees of freedom for the denominator (Shrout & Fleiss 1979, eq. 10).
        fj = jms / ems
        base = n * (1 + (k - 1) * single) - k * single
        vn = (k - 1) * (n - 1) * (k * single * fj + base) ** 2
        vd = (n - 1) * k**2 * single**2 * fj**2 + base**2
        v = vn / vd
        tail = (1 - confidence) / 2
        f_low = stats.f.ppf(1 - tail, n - 1, v)
        f_high = stats.f.ppf(1 - tail, v, n - 1)
        low = n * (bms - f_low * ems) / (f_low * (k * jms + (k * n - k - n) * ems) + n * bms)
        high = n * (f_high * bms - ems) / (k * jms + (k * n - k - n) * ems + n * f_high * bms)
    result = IccResult(model="ICC(2,k)", single=float(single), average=float(average), k=k, n=n,
                       confidence=confidence, method_note=note)
    if low is not None:
        result.single_ci_low, result.single_ci_high = float(low), float(high)
        result.ci_low = float(spearman_brown(reliability=low, factor=k))
        result.ci_high = float(spearman_brown(reliability=high, factor=k))
    return result


def icc_one_way(*, units: Sequence[Hashable], values: Sequence[float], confidence: float = 0.95) -> IccResult:
    """ICC(1,1) and ICC(1,k0) from a one-way ANOVA with unequal group sizes (items with >= 2 ratings)."""
    note = ("Shrout & Fleiss (1979) case 1, one-way random (raters not crossed with items or ratings missing; "
            "rater leniency counts as error); unequal ratings per item via k0; F interval")
    vals = np.asarray(values, dtype=float)
    ids, inverse = np.unique(np.asarray(units), return_inverse=True)
    counts = np.bincount(inverse, minlength=len(ids))
    keep = counts[inverse] >= 2
    vals, inverse = vals[keep], np.unique(inverse[keep], return_inverse=True)[1]
    counts = np.bincount(inverse)
    n, total = len(counts), int(counts.sum())
    if n < 3:
        return IccResult(model="ICC(1,k)", single=None, average=None, n=n, confidence=confidence,
                         method_note=note, reason=f"only {n} item(s) have two or more ratings; need at least 3")
    means = np.bincount(inverse, weights=vals) / counts
    grand = vals.mean()
    bms = (counts * (means - grand) ** 2).sum() / (n - 1)
    wms = ((vals - means[inverse]) ** 2).sum() / (total - n)
    k0 = (total - (counts**2).sum() / total) / (n - 1)
    if bms == 0:
        return IccResult(model="ICC(1,k)", single=None, average=None, k=float(k0), n=n, confidence=confidence,
                         method_note=note, reason="no variation between items")
    single = (bms - wms) / (bms + (k0 - 1) * wms)
    average = (bms - wms) / bms
    result = IccResult(model="ICC(1,k)", single=float(single), average=float(average), k=float(k0), n=n,
                       confidence=confidence, method_note=note)
    if wms > 0:
        tail = (1 - confidence) / 2
        f_obs = bms / wms
        f_low = f_obs / stats.f.ppf(1 - tail, n - 1, total - n)
        f_high = f_obs * stats.f.ppf(1 - tail, total - n, n - 1)
        result.single_ci_low = float((f_low - 1) / (f_low + k0 - 1))
        result.single_ci_high = float((f_high - 1) / (f_high + k0 - 1))
        result.ci_low, result.ci_high = float(1 - 1 / f_low), float(1 - 1 / f_high)
    return result


def icc_compute(
    *, units: Sequence[Hashable], raters: Sequence[Hashable], values: Sequence[float], confidence: float = 0.95,
) -> IccResult:
    """ICC(2,k) when the items with >= 2 ratings were all rated by the same raters; else ICC(1,k)."""
    u = np.asarray(units)
    r = np.asarray(raters)
    vals = np.asarray(values, dtype=float)
    if not (len(u) == len(r) == len(vals)):
        raise A.AgreementInputError("units, raters and values differ in length")
    unit_ids, ui = np.unique(u, return_inverse=True)
    rater_ids, ri = np.unique(r, return_inverse=True)
    per_unit = np.bincount(ui, minlength=len(unit_ids))
    pairable = per_unit[ui] >= 2
    used_units = np.unique(ui[pairable])
    used_raters = np.unique(ri[pairable])
    matrix = np.full((len(unit_ids), len(rater_ids)), np.nan)
    matrix[ui, ri] = vals
    block = matrix[np.ix_(used_units, used_raters)]
    if len(used_units) and not np.isnan(block).any():
        return icc_from_matrix(block, confidence=confidence)
    return icc_one_way(units=u, values=vals, confidence=confidence)


@dataclass
class Ceiling:
    reliability: float | None  # R used for the ceiling
    source: str  # which estimate R is
    ceiling: float | None  # sqrt(R)
    items: int
    reason: str = ""  # non-empty: "no ceiling: ..." is shown instead of a number

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def disattenuate(self, r: float | None) -> float | None:
        if r is None or self.ceiling is None:
            return None
        return r / self.ceiling


def ceiling_compute(*, reliability: float | None, items: int, source: str, why_missing: str = "") -> Ceiling:
    if reliability is None:
        return Ceiling(reliability=None, source=source, ceiling=None, items=items,
                       reason=f"no ceiling: the reliability is undefined ({why_missing or 'no estimate'})")
    if items < MIN_CEILING_ITEMS:
        return Ceiling(reliability=reliability, source=source, ceiling=None, items=items,
                       reason=f"no ceiling: only {items} item(s) with two or more ratings (need {MIN_CEILING_ITEMS})")
    if reliability <= 0:
        return Ceiling(reliability=reliability, source=source, ceiling=None, items=items,
                       reason=f"no ceiling: the reliability estimate is {reliability:.3f} (<= 0): the raters' "
                              "means do not agree beyond chance")
    return Ceiling(reliability=reliability, source=source, ceiling=math.sqrt(min(reliability, 1.0)), items=items)


def reliability_compute(
    *,
    units: Sequence[Hashable],
    raters: Sequence[Hashable],
    values: Sequence[float],
    splits: int = 200,
    seed: int | None = A.DEFAULT_SEED,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """Split-half (Spearman-Brown) and ICC on the same ratings, and the ceiling sqrt(R).

    R for the ceiling is the Pearson split-half with Spearman-Brown: it estimates the correlation
    of the item means with a second, independent set of raters' means, which is the quantity whose
    square root bounds a metric's correlation with the mean. ICC is shown next to it.
    """
    split = A.split_half(units=units, values=values, method="pearson", splits=splits, seed=seed)
    split_rank = A.split_half(units=units, values=values, method="spearman", splits=splits, seed=seed)
    icc = icc_compute(units=units, raters=raters, values=values, confidence=confidence)
    ceiling = ceiling_compute(reliability=split.spearman_brown, items=split.n, source="split-half, Spearman-Brown",
                              why_missing=split.reason)
    return {"split_half": split.as_dict(), "split_half_spearman": split_rank.as_dict(), "icc": icc.as_dict(),
            "ceiling": ceiling.as_dict(), "_ceiling": ceiling}
