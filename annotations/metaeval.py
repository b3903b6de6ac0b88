"""Metric meta-evaluation: does an automatic score agree with human ratings, and which one agrees better?

Pure functions over arrays and dicts (no ORM, so each is tested on its own), used by the study report and
by `manage.py meta_eval`. As in the WMT metrics shared tasks (Mathur et al. 2020; Freitag et al.
2021) and Deutsch et al. (2021) on confidence intervals for metric correlations:

* item level: Spearman, Kendall tau-b and Pearson of each metric with the mean human rating, with
  bootstrap CIs over items (percentile for Spearman and Kendall; for Pearson a bootstrap-t on Fisher's
  z, studentized by the influence-function SE, which covered 94.3-95.5 % in simulation where the
  percentile interval covered 93.2-94.2 %); every metric is resampled with the SAME items, so
* comparisons between metrics are paired: the difference of two correlations gets a paired bootstrap
  CI and a p-value that inverts it (p < 1 - confidence exactly when the CI excludes 0). Spearman: the
  percentile interval. Pearson: a symmetric bootstrap-t (Davison & Hinkley 1997, 5.2-5.3), which
  called two equally good metrics different in 3.8-4.4 % of 3000 simulated studies per design
  (benchmarks/comparison_methods.py; docs/reports.md), where the percentile interval's p reached
  5.5-6.1 %; Williams' (1959) t-test for dependent correlations (Steiger 1980, eq. 7), which
  assumes normal, homoscedastic data, was at 4.5-5.2 % there and 5.8-6.2 % in smaller runs. Williams'
  t is kept as a secondary figure (`williams`). All p-values shown are Holm-corrected together;
* grouped ("within sample"): the correlation among the descriptions of one sample (face), averaged
  over samples; Student's t CI over samples;
* system level: per system (LLM config x prompt) mean metric vs mean human score, Pearson and
  Kendall over systems, and pairwise accuracy (share of system pairs the metric orders as humans
  do; Kocmi et al. 2021); Pearson's CI is for the systems' population means (noise-corrected r,
  items resampled within each system), Kendall and pairwise accuracy have none (`_system_level`);
* per-rater z-normalised human scores (WMT direct assessment) side by side with raw.

Every figure of one comparison uses the same items: those with >= 2 usable ratings and a score from
every metric. Metrics whose scores are identical on every item (the same checkpoint under two
names) are shown once, with both names.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats
from threadpoolctl import threadpool_limits

from annotations import agreement as A
from annotations import reliability as REL
from inference.metrics import holm_adjust  # one Holm rule for the report and the experiment tables

METHODS = ("spearman", "kendall", "pearson")
SYMBOLS = {"spearman": "ρ", "kendall": "τ", "pearson": "r"}
MIN_ITEMS_FOR_CI = 10
BOOTSTRAP_NOTE = ("bootstrap over items, all metrics resampled with the same items: percentile intervals for "
                  "Spearman and Kendall, a bootstrap-t on Fisher's z (influence-function SE) for Pearson")
TESTS = {"spearman": "paired percentile bootstrap (p inverts the interval)",
         "pearson": "paired bootstrap-t, symmetric (influence-function SE; p inverts the interval)"}
RESAMPLE_CELLS = 2_000_000  # resampled items held at once per metric: bounds memory for large studies


class MetaEvalInputError(ValueError):
    """The ratings or scores cannot be analysed as given."""


# --- small pure helpers -------------------------------------------------------------------------

def williams_test(*, r12: float, r13: float, r23: float, n: int) -> tuple[float, float]:
    """Williams' t for H0: rho12 = rho13 (variable 1 shared), df = n - 3; two-sided p.

    t = (r12 - r13) sqrt((n-1)(1+r23) / (2 (n-1)/(n-3) |R| + rbar^2 (1-r23)^3)),
    |R| = 1 - r12^2 - r13^2 - r23^2 + 2 r12 r13 r23, rbar = (r12 + r13) / 2 (Steiger 1980, eq. 7).
    """
    if n < 4:
        raise MetaEvalInputError("Williams' test needs at least 4 items")
    det = 1 - r12**2 - r13**2 - r23**2 + 2 * r12 * r13 * r23
    rbar = (r12 + r13) / 2
    denom = 2 * (n - 1) / (n - 3) * det + rbar**2 * (1 - r23) ** 3
    if denom <= 0:
        return (0.0, 1.0) if r12 == r13 else (math.copysign(math.inf, r12 - r13), 0.0)
    t = (r12 - r13) * math.sqrt((n - 1) * (1 + r23) / denom)
    return float(t), float(2 * stats.t.sf(abs(t), n - 3))


def human_scores(
    *, units: Sequence[Hashable], raters: Sequence[Hashable], values: Sequence[float], znorm: bool = False,
) -> dict[Hashable, tuple[float, int]]:
    """Per unit: (mean rating, number of ratings). With znorm, each rater's ratings are first
    standardised by that rater's own mean and SD (WMT DA); a rater with no spread contributes 0."""
    vals = np.asarray(values, dtype=float)
    if znorm:
        rater_ids, ri = np.unique(np.asarray(raters, dtype=str), return_inverse=True)
        cnt = np.bincount(ri)
        mean = np.bincount(ri, weights=vals) / cnt
        var = np.bincount(ri, weights=(vals - mean[ri]) ** 2) / cnt
        sd = np.sqrt(var)
        vals = np.where(sd[ri] > 0, (vals - mean[ri]) / np.where(sd[ri] > 0, sd[ri], 1.0), 0.0)
    sums: dict[Hashable, list[float]] = {}
    for u, v in zip(units, vals, strict=True):
        entry = sums.setdefault(u, [0.0, 0])
        entry[0] += float(v)
        entry[1] += 1
    return {u: (s / c, int(c)) for u, (s, c) in sums.items()}


def _correlation(method: str, x: np.ndarray, y: np.ndarray) -> tuple[float | None, float | None]:
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None, None
    fn = {"pearson": stats.pearsonr, "spearman": stats.spearmanr, "kendall": stats.kendalltau}[method]
    res = fn(x, y)
    return float(res.statistic), float(res.pvalue)


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None



def _quantiles(samples: np.ndarray, confidence: float) -> list[float] | None:
    valid = np.sort(samples[~np.isnan(samples)])
    if not len(valid):
        return None
    low = A.order_index(len(valid), (1 - confidence) / 2)
    return [float(valid[low]), float(valid[len(valid) - 1 - low])]


def _percentile_p(samples: np.ndarray) -> float | None:
    """Two-sided p for H0: difference = 0 that inverts the percentile interval (`_quantiles`)."""
    valid = samples[~np.isnan(samples)]
    if not len(valid):
        return None
    tail = 1 + min(np.sum(valid <= 0), np.sum(valid >= 0))
    return float(min(1.0, 2 * tail / (len(valid) + 1)))




def _influence_gram(influence: Sequence[np.ndarray], weights: np.ndarray | None = None) -> np.ndarray:
    """Mean over (drawn) items of IF_i * IF_j for every pair of metrics: (..., metrics, metrics)."""
    m = len(influence)
    w = np.ones(influence[0].shape) if weights is None else weights
    total = w.sum(axis=-1)
    gram = np.empty((*influence[0].shape[:-1], m, m))
    for i, j in itertools.combinations_with_replacement(range(m), 2):
        gram[..., i, j] = gram[..., j, i] = (w * influence[i] * influence[j]).sum(axis=-1) / total
    return gram


def _rank_runs(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x's sort order, where each run of equal values starts in it, and each item's run."""
    order = np.argsort(x, kind="stable")
    new = np.r_[True, x[order][1:] != x[order][:-1]]
    run = np.empty(len(x), dtype=np.intp)
    run[order] = np.cumsum(new) - 1
    return order, np.flatnonzero(new), run


def _resampled_ranks(weights: np.ndarray, runs: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    """Each item's midrank within every resample (rows of draw counts), as scipy's rankdata gives it for
    the resampled values: the draws below its run of equal values plus the middle of that run. Sums over
    sorted draw counts replace a sort per resample (exact; 4x faster at 20,000 items)."""
    order, starts, run = runs
    per_run = np.add.reduceat(weights[:, order], starts, axis=1)
    below = np.cumsum(per_run, axis=1) - per_run
    return (below + (per_run + 1) / 2)[:, run]




def _symmetric_t(
    *, delta: float, se: float, samples: np.ndarray, se_samples: np.ndarray, confidence: float,
) -> tuple[list[float], float] | None:
    """Symmetric bootstrap-t interval delta +- c se and its p = (1 + #{|t*| >= |t|}) / (B + 1), with c the
    order statistic of |t*| by the same (B + 1) rule: p < 1 - confidence exactly when the CI excludes 0."""
    student = A.studentized(observed=delta, se=se, samples=samples, se_samples=se_samples)
    if student is None:
        return None
    t, t_obs = np.sort(np.abs(student[0])), abs(student[1])
    c = float(t[len(t) - 1 - A.order_index(len(t), 1 - confidence)])
    p = float((1 + np.sum(t >= t_obs)) / (len(t) + 1))
    return [delta - c * se, delta + c * se], p


@dataclass(frozen=True)
class _Resampled:
    """Bootstrap correlations of every metric with the human score, all on the same resampled items, and
    per resample the Gram matrix of the metrics' Pearson influence values (`_influence_gram`) that
    studentizes Pearson's r and the differences between metrics."""
    names: list[str]
    samples: dict[str, dict[str, np.ndarray]]
    gram: np.ndarray  # (resamples, metrics, metrics)
    observed_gram: np.ndarray  # (metrics, metrics)
    items: int

    def pearson_se(self, first: str, second: str | None = None) -> tuple[float, np.ndarray]:
        """SE of r_first, or of r_first - r_second: (observed, per resample)."""
        i = self.names.index(first)
        if second is None:
            return math.sqrt(self.observed_gram[i, i] / self.items), np.sqrt(self.gram[:, i, i] / self.items)
        j = self.names.index(second)

        def var(g: np.ndarray) -> np.ndarray:
            return np.maximum(g[..., i, i] + g[..., j, j] - 2 * g[..., i, j], 0) / self.items
        return math.sqrt(var(self.observed_gram)), np.sqrt(var(self.gram))


def _boot_correlations(
    *, human: np.ndarray, metrics: Mapping[str, np.ndarray], resamples: int, rng: np.random.Generator,
    methods: Sequence[str] = METHODS,
) -> _Resampled:
    """Bootstrap correlations of every metric with the human score, all on the same resampled items.

    A resample is a row of draw counts over the items (weights): Pearson and its influence values are
    weighted moments, Spearman is Pearson on the resampled midranks (`_resampled_ranks`). Pearson's
    influence values are always computed (they studentize); `methods` picks the other samples kept."""
    n = len(human)
    out = {name: {m: np.full(resamples, np.nan) for m in METHODS} for name in metrics}
    gram = np.empty((resamples, len(metrics), len(metrics)))
    human_runs = _rank_runs(human)
    runs = {name: _rank_runs(x) for name, x in metrics.items()}
    chunk = max(1, min(200, RESAMPLE_CELLS // n))
    for start in range(0, resamples, chunk):
        stop = min(start + chunk, resamples)
        idx = rng.integers(0, n, size=(stop - start, n))
        weights = A.draw_counts(idx)
        total = np.full((stop - start, 1), float(n))
        human_ranks = A.standardise(_resampled_ranks(weights, human_runs), weights, total)
        influence = []
        for name, x in metrics.items():
            out[name]["pearson"][start:stop], inf = A.pearson_influence(x, human, weights)
            influence.append(inf)
            if "spearman" in methods:
                ranks = A.standardise(_resampled_ranks(weights, runs[name]), weights, total)
                out[name]["spearman"][start:stop] = (weights * ranks * human_ranks).sum(axis=1) / n
            if "kendall" in methods:
                out[name]["kendall"][start:stop] = A._kendall_resampled(x, human, idx)
        gram[start:stop] = _influence_gram(influence, weights)
    observed = _influence_gram([A.pearson_influence(x, human)[1] for x in metrics.values()])
    return _Resampled(names=list(metrics), samples=out, gram=gram, observed_gram=observed, items=n)


# --- the analysis -------------------------------------------------------------------------------

def metaeval_compute(**kwargs: Any) -> dict[str, Any]:
    """Everything the report and `meta_eval` show, as one JSON-ready dict (see the module docstring).

    The bootstrap is thousands of small matrix products; a multi-threaded BLAS spends more time
    synchronising its threads than computing them (150x slower measured on a loaded 2-core machine),
    so they run on one BLAS thread.
    """
    with threadpool_limits(limits=1, user_api="blas"):
        return _metaeval(**kwargs)


def _metaeval(
    *,
    units: Sequence[Hashable],
    raters: Sequence[Hashable],
    values: Sequence[float],
    scores: Mapping[str, Mapping[Hashable, float]],
    systems: Mapping[Hashable, str] | None = None,
    groups: Mapping[Hashable, Hashable] | None = None,
    labels: Mapping[str, str] | None = None,
    resamples: int = 1000,
    seed: int | None = A.DEFAULT_SEED,
    confidence: float = 0.95,
    znorm: bool = True,
) -> dict[str, Any]:
    try:
        A.bootstrap_params_check(resamples=resamples, confidence=confidence, seed=seed)
    except A.AgreementInputError as exc:
        raise MetaEvalInputError(str(exc)) from None
    labels = dict(labels or {})
    raw = human_scores(units=units, raters=raters, values=values)
    rated = {u for u, (_, c) in raw.items() if c >= 2}
    names = sorted(scores)
    common = sorted((u for u in rated if all(u in scores[m] for m in names)), key=_sort_key)
    notes: list[str] = []
    dropped_single = sum(1 for _, c in raw.values() if c < 2)
    if dropped_single:
        notes.append(f"{dropped_single} item(s) with fewer than two ratings are left out of every figure.")
    missing_scores = len(rated) - len(common)
    if missing_scores:
        notes.append(f"{missing_scores} rated item(s) lack a score from some metric and are left out of every "
                     "figure, so all metrics are compared on the same items.")
    common_set = set(common)
    keep = [i for i, u in enumerate(units) if u in common_set]
    sub_units = [units[i] for i in keep]
    sub_raters = [raters[i] for i in keep]
    sub_values = [float(values[i]) for i in keep]
    rel = REL.reliability_compute(units=sub_units, raters=sub_raters, values=sub_values, seed=seed,
                                  confidence=confidence)
    ceiling: REL.Ceiling = rel.pop("_ceiling")
    human = np.array([raw[u][0] for u in common])
    arrays = {m: np.array([float(scores[m][u]) for u in common]) for m in names}
    # The same checkpoint under two names gives identical scores: show it once, with both names.
    merged: dict[str, list[str]] = {}
    for m in names:
        twin = next((k for k in merged if np.array_equal(arrays[k], arrays[m])), None)
        if twin is None:
            merged[m] = [m]
        else:
            merged[twin].append(m)
    identical = [group for group in merged.values() if len(group) > 1]
    for group in identical:
        notes.append(f"{' and '.join(group)} gave identical scores on every item (the same checkpoint): "
                     "shown once.")
    shown = {" = ".join(group): arrays[key] for key, group in merged.items()}
    for group in merged.values():
        labels.setdefault(" = ".join(group), " = ".join(labels.get(g, g) for g in group))
    rng = np.random.default_rng(seed)
    n = len(common)
    small = n < MIN_ITEMS_FOR_CI
    if small:
        notes.append(f"Only {n} item(s): too few for confidence intervals or tests (need {MIN_ITEMS_FOR_CI}); "
                     "point values are shown for orientation only.")
    boot = (None if small or not shown else
            _boot_correlations(human=human, metrics=shown, resamples=resamples, rng=rng))
    metrics_out = {}
    for name, x in shown.items():
        metrics_out[name] = _metric_item_level(name=name, x=x, human=human, boot=boot, confidence=confidence,
                                               ceiling=ceiling, label=labels[name])
    if znorm and shown and n >= 3:
        zs = human_scores(units=sub_units, raters=sub_raters, values=sub_values, znorm=True)
        zhuman = np.array([zs[u][0] for u in common])
        zboot = (None if small else
                 _boot_correlations(human=zhuman, metrics=shown, resamples=resamples,
                                    rng=np.random.default_rng(seed)))
        for name, x in shown.items():
            z = _metric_item_level(name=name, x=x, human=zhuman, boot=zboot, confidence=confidence,
                                   ceiling=None, label=labels[name])
            metrics_out[name]["znorm"] = {m: z[m] for m in METHODS}
    comparisons = _comparisons(shown=shown, human=human, boot=boot, metrics_out=metrics_out,
                               confidence=confidence) if boot is not None else []
    result: dict[str, Any] = {
        "items": n,
        "units": list(common),
        "human_means": human.tolist(),
        "ratings": len(sub_values),
        "reliability": {"split_half_sb": rel["split_half"]["spearman_brown"], "split_half": rel["split_half"],
                        "split_half_spearman": rel["split_half_spearman"],
                        "icc2k": rel["icc"]["average"], "icc": rel["icc"]},
        "ceiling": ceiling.ceiling,
        "ceiling_detail": ceiling.as_dict(),
        "metrics": metrics_out,
        "comparisons": comparisons,
        "identical": identical,
        "params": {"resamples": resamples, "seed": seed, "confidence": confidence,
                   "interval_method": BOOTSTRAP_NOTE},
        "notes": notes,
    }
    if systems is not None:
        result["system_level"] = _system_level(common=common, human=human, shown=shown, systems=systems,
                                               resamples=resamples, seed=seed, confidence=confidence)
    if groups is not None:
        result["grouped"] = _grouped(common=common, human=human, shown=shown, groups=groups, resamples=resamples,
                                     seed=seed, confidence=confidence)
    result["headline"] = headline_text(result=result, labels=labels)
    return result


def _sort_key(u: Hashable) -> tuple[int, Any]:
    return (0, u) if isinstance(u, int | float) else (1, str(u))


def _metric_item_level(
    *, name: str, x: np.ndarray, human: np.ndarray, boot: _Resampled | None, confidence: float,
    ceiling: REL.Ceiling | None, label: str,
) -> dict[str, Any]:
    out: dict[str, Any] = {"label": label, "n": len(x)}
    for method in METHODS:
        r, p = _correlation(method, x, human)
        entry: dict[str, Any] = {"r": r, "p": p, "ci": None, "n": len(x), "undefined_resamples": 0, "reason": ""}
        if r is None:
            entry["reason"] = (f"only {len(x)} item(s)" if len(x) < 3
                               else "no variation in the " + ("metric's scores" if np.ptp(x) == 0
                                                               else "human scores"))
        elif boot is None:
            entry["reason"] = f"no interval: only {len(x)} items (need {MIN_ITEMS_FOR_CI})"
        else:
            samples = boot.samples[name][method]
            entry["ci"], entry["interval"] = _correlation_interval(method=method, r=r, samples=samples, boot=boot,
                                                                   name=name, confidence=confidence)
            entry["undefined_resamples"] = int(np.isnan(samples).sum())
        out[method] = entry
    if ceiling is not None:
        out["disattenuated"] = {m: ceiling.disattenuate(out[m]["r"]) for m in ("spearman", "pearson")}
        out["exceeds_ceiling"] = bool(ceiling.ceiling is not None and out["spearman"]["r"] is not None
                                      and out["spearman"]["r"] > ceiling.ceiling)
    return out


def _correlation_interval(
    *, method: str, r: float, samples: np.ndarray, boot: _Resampled, name: str, confidence: float,
) -> tuple[list[float] | None, str]:
    """Pearson: bootstrap-t on Fisher's z; else, or when r is +-1 or nothing varies, the percentile interval."""
    if method == "pearson":
        se, se_samples = boot.pearson_se(name)
        ci = A.fisher_t_interval(r=r, se=se, samples=samples, se_samples=se_samples, confidence=confidence)
        if ci is not None:
            return ci, "bootstrap-t on Fisher's z"
    return _quantiles(samples, confidence), "percentile"


def _difference_test(
    *, method: str, a: str, b: str, delta: float, boot: _Resampled, confidence: float,
) -> dict[str, Any]:
    """CI and p of r_a - r_b from the paired resamples; the p inverts the CI (see TESTS)."""
    diff = boot.samples[a][method] - boot.samples[b][method]
    if method == "pearson":
        se, se_samples = boot.pearson_se(a, b)
        student = _symmetric_t(delta=delta, se=se, samples=diff, se_samples=se_samples, confidence=confidence)
        if student is not None:
            return {"ci": student[0], "p": student[1], "test": TESTS["pearson"]}
    return {"ci": _quantiles(diff, confidence), "p": _percentile_p(diff), "test": TESTS["spearman"]}


def _comparisons(
    *, shown: Mapping[str, np.ndarray], human: np.ndarray, boot: _Resampled,
    metrics_out: dict[str, Any], confidence: float,
) -> list[dict[str, Any]]:
    """Every pair of metrics, Spearman and Pearson differences with the paired bootstrap CI and p of
    `_difference_test` (Pearson also Williams' t, secondary), ordered so that `a` is the better one; Holm
    over all p shown."""
    rows = []
    n = len(human)
    for first, second in itertools.combinations(shown, 2):
        for method in ("spearman", "pearson"):
            ra, rb = metrics_out[first][method]["r"], metrics_out[second][method]["r"]
            if ra is None or rb is None:
                continue
            a, b = (first, second) if ra >= rb else (second, first)
            ra, rb = max(ra, rb), min(ra, rb)
            row: dict[str, Any] = {"a": a, "b": b, "method": method, "delta": ra - rb,
                                   **_difference_test(method=method, a=a, b=b, delta=ra - rb, boot=boot,
                                                      confidence=confidence)}
            if method == "pearson":
                r23 = float(np.corrcoef(shown[a], shown[b])[0, 1])
                t, p = williams_test(r12=ra, r13=rb, r23=r23, n=n)
                row["williams"] = {"t": t, "df": n - 3, "p": p, "note": "secondary: assumes normal, "
                                   "homoscedastic data; not Holm-corrected"}
            rows.append(row)
    for row, adjusted in zip(rows, holm_adjust([r["p"] for r in rows]), strict=True):
        row["p_holm"] = adjusted
    return rows


SYSTEM_RANK_NO_CI = ("no interval: the systems are fixed and only their items are random, so the population "
                     "ranking of two close systems is a coin flip in the data, and a bootstrap over items "
                     "covered the population value in only 77-84 % of simulated studies with 10 systems "
                     "(docs/reports.md)")


def _system_level(
    *, common: list[Hashable], human: np.ndarray, shown: Mapping[str, np.ndarray], systems: Mapping[Hashable, str],
    resamples: int, seed: int | None, confidence: float,
) -> dict[str, Any]:
    """Per system (LLM config x prompt) the mean metric and mean human score; Pearson, Kendall and pairwise
    accuracy over systems.

    Estimand: the systems are fixed, their items random; the interval is for the statistic of the systems'
    POPULATION means. The observed means carry sampling noise of the order of the differences between
    systems, which pulls r towards 0 (and a bootstrap of r adds the noise twice): the percentile interval
    of the observed r covered the population r in 23.5-38.5 % of simulated studies with 10 systems.
    Pearson's interval is therefore for the noise-corrected r (`_system_pearson_corrected`) with a
    bootstrap that resamples items within each system; Kendall and pairwise accuracy get no interval
    (SYSTEM_RANK_NO_CI)."""
    labels = [systems.get(u) for u in common]
    present = [i for i, s in enumerate(labels) if s is not None]
    names = sorted({labels[i] for i in present})
    out: dict[str, Any] = {"systems": names, "items": len(present), "metrics": {}}
    if len(names) < 3:
        out["reason"] = f"{len(names)} system(s): correlations over systems need at least 3"
    if not present:
        return out
    index = {s: j for j, s in enumerate(names)}
    sys_idx = np.array([index[labels[i]] for i in present], dtype=int)
    h = human[present]
    onehot = np.zeros((len(present), len(names)))
    onehot[np.arange(len(present)), sys_idx] = 1.0
    sizes = onehot.sum(axis=0)
    per_system_h = (onehot.T @ h) / np.maximum(sizes, 1)
    rng = np.random.default_rng(seed)
    members = [np.flatnonzero(sys_idx == j) for j in range(len(names))]
    # Items are resampled within their system (the systems are fixed): every resample keeps each system's size.
    weights = A.draw_counts(np.concatenate([m[rng.integers(0, len(m), (resamples, len(m)))] for m in members],
                                           axis=1))
    out["human_means"] = {s: float(v) for s, v in zip(names, per_system_h, strict=True)}
    for name, x in shown.items():
        xs = x[present]
        per_system_x = (onehot.T @ xs) / np.maximum(sizes, 1)
        entry: dict[str, Any] = {"means": {s: float(v) for s, v in zip(names, per_system_x, strict=True)}}
        entry["pairwise_accuracy"] = _finite(_pairwise_accuracy(per_system_x[None], per_system_h[None])[0])
        entry["pairwise_accuracy_ci"] = None
        entry["pairwise_accuracy_reason"] = SYSTEM_RANK_NO_CI
        if len(names) >= 3:
            r, p = _correlation("pearson", per_system_x, per_system_h)
            pearson: dict[str, Any] = {"r": r, "p": p, "ci": None, "n": len(names), "reason": ""}
            corrected = _system_pearson_corrected(xs, h, onehot, np.ones((1, len(present))))[0]
            pearson["r_corrected"] = _finite(corrected)
            if sizes.min() < MIN_ITEMS_FOR_CI:
                # With a handful of items a system's noise estimate is itself noise (resampling 2 items often
                # draws one twice: no noise at all), and coverage was verified from 10 items per system up.
                pearson["reason"] = (f"no interval: a system has only {int(sizes.min())} item(s); the noise "
                                     f"correction needs at least {MIN_ITEMS_FOR_CI} per system")
            elif not np.isfinite(corrected):
                pearson["reason"] = ("no interval: the systems' means do not differ beyond their sampling noise "
                                     "(noise-corrected variance between systems <= 0)")
            else:
                samples = _system_pearson_corrected(xs, h, onehot, weights)
                # A resample whose systems do not differ beyond noise has an undefined r: it counts against both
                # ends (as -1 for the lower bound and +1 for the upper), so it can only widen the interval.
                low = _quantiles(np.where(np.isnan(samples), -1.0, samples), confidence)
                high = _quantiles(np.where(np.isnan(samples), 1.0, samples), confidence)
                pearson["ci"] = [low[0], high[1]]
                pearson["undefined_resamples"] = int(np.isnan(samples).sum())
                pearson["interval"] = ("percentile bootstrap of the noise-corrected r, items resampled within "
                                       "each system")
            entry["pearson"] = pearson
            tau, p_tau = _correlation("kendall", per_system_x, per_system_h)
            entry["kendall"] = {"r": tau, "p": p_tau, "ci": None, "n": len(names), "reason": SYSTEM_RANK_NO_CI}
        out["metrics"][name] = entry
    out["method_note"] = ("per system: mean over its items; Pearson and Kendall over systems; pairwise accuracy "
                          "(Kocmi et al. 2021) over system pairs that humans rank differently; Pearson's CI is for "
                          "the systems' population means (noise-corrected r, items resampled within each system); "
                          "Kendall and pairwise accuracy have no CI (a bootstrap over items under-covers them)")
    return out


def _system_pearson_corrected(x: np.ndarray, h: np.ndarray, onehot: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Pearson's r between the systems' population means, estimated from item data (rows of draw counts).

    Over S fixed systems with observed means m_s = mu_s + e_s, the sample covariance (1/(S-1)) of the means
    has expectation cov(mu) + mean_s cov(e_s), and cov(e_s) is estimated by the within-system sample
    covariance (divisor n_s - 1) over n_s. Subtracting it (method of moments, as in one-way ANOVA) gives the
    between-system variances and covariance; r = c_xh / sqrt(c_xx c_hh), clipped to [-1, 1]; NaN where a
    corrected variance is <= 0 (the systems do not differ beyond noise)."""
    count = weights @ onehot
    with np.errstate(invalid="ignore", divide="ignore"):
        mx = ((weights * x) @ onehot) / count
        mh = ((weights * h) @ onehot) / count
        sys_of = onehot.argmax(axis=1)
        dx, dh = x[None] - mx[:, sys_of], h[None] - mh[:, sys_of]

        def noise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            return (((weights * a * b) @ onehot) / (count - 1) / count).mean(axis=1)

        cx, ch = mx - mx.mean(axis=1, keepdims=True), mh - mh.mean(axis=1, keepdims=True)
        s = onehot.shape[1]
        cxx = (cx * cx).sum(axis=1) / (s - 1) - noise(dx, dx)
        chh = (ch * ch).sum(axis=1) / (s - 1) - noise(dh, dh)
        cxh = (cx * ch).sum(axis=1) / (s - 1) - noise(dx, dh)
        r = np.where((cxx > 0) & (chh > 0), cxh / np.sqrt(np.abs(cxx * chh)), np.nan)
    return np.clip(r, -1.0, 1.0)


def _pairwise_accuracy(metric_means: np.ndarray, human_means: np.ndarray) -> np.ndarray:
    """Per row: share of system pairs with different human means that the metric orders the same way."""
    s = metric_means.shape[1]
    if s < 2:
        return np.full(len(metric_means), np.nan)
    i, j = np.triu_indices(s, 1)
    dh = np.sign(human_means[:, i] - human_means[:, j])
    dm = np.sign(metric_means[:, i] - metric_means[:, j])
    counted = dh != 0
    agree = (dh == dm) & counted
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counted.sum(axis=1) > 0, agree.sum(axis=1) / counted.sum(axis=1), np.nan)


def _grouped(
    *, common: list[Hashable], human: np.ndarray, shown: Mapping[str, np.ndarray], groups: Mapping[Hashable, Hashable],
    resamples: int, seed: int | None, confidence: float,
) -> dict[str, Any]:
    """Kendall tau-b within each group (the descriptions of one sample), averaged over groups.

    A group needs two or more items with different human means and different metric scores;
    others are counted as skipped. The groups are independent draws, so the interval is Student's t over
    the per-group values (`agreement.mean_interval`); the percentile bootstrap over groups it replaces
    covered the population mean tau in 86.6-92.8 % of simulated studies at 10-20 groups
    (benchmarks/ci_coverage_more.py, docs/reports.md). `resamples` and `seed` are unused."""
    members: dict[Hashable, list[int]] = {}
    for i, u in enumerate(common):
        if u in groups:
            members.setdefault(groups[u], []).append(i)
    out: dict[str, Any] = {"groups": len(members), "metrics": {},
                           "method_note": "Kendall tau-b among the items of one group, averaged over groups; "
                                          "Student's t interval over groups"}
    for name, x in shown.items():
        taus = []
        for idx in members.values():
            if len(idx) < 2 or np.ptp(human[idx]) == 0 or np.ptp(x[idx]) == 0:
                continue
            taus.append(stats.kendalltau(x[idx], human[idx]).statistic)
        vals = np.array(taus, dtype=float)
        entry: dict[str, Any] = {"tau": float(vals.mean()) if len(vals) else None, "groups_used": len(vals),
                                 "groups_skipped": len(members) - len(vals), "ci": None}
        if len(vals) >= MIN_ITEMS_FOR_CI:
            entry["ci"] = list(A.mean_interval(vals, confidence))
        elif len(vals):
            entry["reason"] = f"no interval: only {len(vals)} usable group(s) (need {MIN_ITEMS_FOR_CI})"
        else:
            entry["reason"] = "no group has two or more items that differ in both human and metric scores"
        out["metrics"][name] = entry
    return out


# --- the plain-language answer ------------------------------------------------------------------

def _f(x: float | None) -> str:
    return "—" if x is None else f"{x:.2f}"


def _p(p: float | None) -> str:
    if p is None:
        return "—"
    return "< 0.001" if p < 0.001 else f"= {p:.3f}"


def _short(label: str) -> str:
    """'sentence (all-MiniLM-L6-v2)' -> 'sentence': the first mention carries the full label."""
    return " = ".join(part.split(" (")[0] for part in label.split(" = "))


def headline_text(*, result: dict[str, Any], labels: Mapping[str, str] | None = None) -> str:
    """One paragraph answering "does the metric agree with humans, and which one agrees best?"."""
    labels = labels or {}
    n = result["items"]
    metrics = result["metrics"]
    defined = {k: v for k, v in metrics.items() if v["spearman"]["r"] is not None}
    parts: list[str] = []
    if not metrics:
        return "No metric scores the rated items, so there is nothing to compare with the human ratings."
    if not defined:
        reasons = "; ".join(f"{k}: {v['spearman']['reason']}" for k, v in metrics.items())
        return f"No metric's correlation with the mean human rating is defined over {n} item(s) ({reasons})."
    best = max(defined, key=lambda k: defined[k]["spearman"]["r"])
    rho = defined[best]["spearman"]
    ci = f" [{_f(rho['ci'][0])}, {_f(rho['ci'][1])}]" if rho["ci"] else " (no interval)"
    parts.append(f"{labels.get(best, best)}: ρ = {_f(rho['r'])}{ci} with the mean human rating over {n} "
                 f"item{'s' if n != 1 else ''}")
    ceiling = result["ceiling_detail"]
    if ceiling["ceiling"] is None:
        parts.append(ceiling["reason"])
    else:
        parts.append(f"the best any metric could reach is {_f(ceiling['ceiling'])} "
                     f"(reliability {_f(ceiling['reliability'])})")
        if defined[best]["spearman"]["r"] > ceiling["ceiling"]:
            parts.append(f"{_short(labels.get(best, best))}'s ρ is above that ceiling, which only sampling noise can explain")
    rows = [c for c in result["comparisons"] if c["method"] == "spearman" and c["a"] == best]
    if rows:
        runner = max(rows, key=lambda c: defined.get(c["b"], {}).get("spearman", {}).get("r") or -2)
        ci_d = f" [{_f(runner['ci'][0])}, {_f(runner['ci'][1])}]" if runner["ci"] else ""
        verdict = ("agrees with humans better than" if runner["p_holm"] is not None and runner["p_holm"] < 0.05
                   else "is not clearly better than")
        tests = sum(c["p"] is not None for c in result["comparisons"])  # what Holm corrected over
        # The interval is the unadjusted one, so the unadjusted p goes with it; the verdict follows the Holm p
        # (a 95 % interval can exclude 0 while the corrected p is above 0.05: both are shown, so it reads true).
        holm = f"Holm p {_p(runner['p_holm'])} over {tests} tests" if tests > 1 else f"p {_p(runner['p_holm'])}"
        raw = f"p {_p(runner['p'])}, " if tests > 1 else ""
        parts.append(f"{_short(labels.get(best, best))} {verdict} {_short(labels.get(runner['b'], runner['b']))} "
                     f"(Δρ = {_f(runner['delta'])}{ci_d}, {raw}{holm})")
    elif len(defined) > 1:
        parts.append("no comparison between metrics: too few items for a test")
    text = "; ".join(parts) + "."
    extra = [note for note in result["notes"] if note.startswith(("Only", "No ")) or "identical" in note]
    return " ".join([text, *extra])
