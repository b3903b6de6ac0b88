"""Simulated rating studies with known population values: the check that every interval holds its coverage.

Used by `benchmarks/ci_coverage.py` (large runs, a table per design) and by
`tests/annotations/test_coverage_simulation.py` (a fast, seeded run). Pure numpy, no ORM.

Model (one data set): each item has a latent quality T ~ N(0, 1). A rating is
round(3 + T + b_rater + e) clipped to the 1..5 scale, e ~ N(0, noise_sd), b_rater ~ N(0, bias_sd).
Raters come from a crowd pool of about `items * k / 2.5` people (each rates ~2.5 items, so raters
are not crossed with items), or, with `pool=False`, the same k raters rate every item (crossed,
complete when nothing is missing). Each rating is missing with probability `missing`.
Metrics: `perfect` = T; `good` = T + N(0, 0.5); `good2` = an independent copy of `good` (equally
good: the null for comparisons); `weak` = T + N(0, 1.2).

Population values come from ONE very large simulated data set of the same design
(`population_compute`, default 200,000 items): alpha, Spearman/Pearson of each metric with the
mean rating, Kendall's tau-b of `good`, their differences, and the single-rater ICC. They are simulated, not analytic: the
rounding to a 5-point scale has no closed form.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats
from threadpoolctl import threadpool_limits

from annotations import agreement as A
from annotations import metaeval as M
from annotations import reliability as REL

DOMAIN = [1, 2, 3, 4, 5]
METRIC_NOISE = {"perfect": 0.0, "good": 0.5, "good2": 0.5, "weak": 1.2}


@dataclass(frozen=True)
class Design:
    name: str
    items: int = 80
    raters: int = 5
    noise_sd: float = 0.8
    bias_sd: float = 0.0
    missing: float = 0.0
    pool: bool = True


DESIGNS = (
    Design("no bias, complete, crossed", pool=False),
    Design("rater bias, crowd pool", bias_sd=0.5),
    Design("missing 30 %, crowd pool", missing=0.3),
    Design("rater bias + missing 30 %, crowd pool", bias_sd=0.5, missing=0.3),
)


def dataset_simulate(design: Design, *, rng: np.random.Generator, items: int | None = None) -> dict[str, Any]:
    n = items or design.items
    k = design.raters
    truth = rng.normal(0, 1, n)
    if design.pool:
        pool = max(k, math.ceil(n * k / 2.5))
        # k distinct raters per item, drawn from the pool.
        raters = _distinct_draws(rng, n, k, pool)
    else:
        pool = k
        raters = np.tile(np.arange(k), (n, 1))
    bias = rng.normal(0, design.bias_sd, pool) if design.bias_sd else np.zeros(pool)
    values = np.clip(np.rint(3 + truth[:, None] + bias[raters] + rng.normal(0, design.noise_sd, (n, k))), 1, 5)
    keep = rng.random((n, k)) >= design.missing
    units = np.repeat(np.arange(n), k).reshape(n, k)
    metrics = {name: truth + (rng.normal(0, sd, n) if sd else 0.0) for name, sd in METRIC_NOISE.items()}
    return {"units": units[keep], "raters": raters[keep], "values": values[keep], "truth": truth, "metrics": metrics}


def _distinct_draws(rng: np.random.Generator, n: int, k: int, pool: int) -> np.ndarray:
    """k distinct rater ids per item out of a large pool (redraw the rare collisions)."""
    out = rng.integers(0, pool, (n, k))
    while True:
        sorted_ = np.sort(out, axis=1)
        dup = (np.diff(sorted_, axis=1) == 0).any(axis=1)
        if not dup.any():
            return out
        out[dup] = rng.integers(0, pool, (int(dup.sum()), k))


def _item_means(units: np.ndarray, values: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    count = np.bincount(units, minlength=n)
    total = np.bincount(units, weights=values, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / count, count


def population_compute(design: Design, *, items: int = 200_000, seed: int = 1) -> dict[str, float]:
    """Population values of the design from one very large simulated data set (see module docstring)."""
    data = dataset_simulate(design, rng=np.random.default_rng(seed), items=items)
    counts = A.value_counts_from_long(units=data["units"], values=data["values"], domain=DOMAIN)
    out: dict[str, float] = {}
    for level in ("ordinal", "interval"):
        out[f"alpha_{level}"] = A.alpha_compute(value_counts=counts, domain=DOMAIN, level=level).alpha
    mean, count = _item_means(data["units"], data["values"], items)
    usable = count >= 2
    for name, x in data["metrics"].items():
        out[f"spearman_{name}"] = float(stats.spearmanr(x[usable], mean[usable]).statistic)
        out[f"pearson_{name}"] = float(stats.pearsonr(x[usable], mean[usable]).statistic)
        out[f"kendall_{name}"] = float(stats.kendalltau(x[usable], mean[usable]).statistic)
    icc = REL.icc_one_way(units=data["units"], values=data["values"]) if design.pool else \
        REL.icc_from_matrix(data["values"].reshape(items, design.raters)[:20_000])
    out["icc_single"] = icc.single
    return out


def dataset_intervals(design: Design, *, rng: np.random.Generator, resamples: int = 200,
                      seed: int = 0) -> dict[str, Any]:
    """One simulated data set through the code the report uses: alpha_bootstrap and metaeval_compute."""
    data = dataset_simulate(design, rng=rng)
    counts = A.value_counts_from_long(units=data["units"], values=data["values"], domain=DOMAIN)
    boot = A.alpha_bootstrap(value_counts=counts, domain=DOMAIN, level="ordinal", resamples=resamples, seed=seed)
    scores = {name: dict(enumerate(x.tolist())) for name, x in data["metrics"].items()}
    meta = M.metaeval_compute(units=data["units"].tolist(), raters=data["raters"].tolist(),
                              values=data["values"].tolist(), scores=scores, resamples=resamples, seed=seed,
                              znorm=False)
    return {"alpha": boot, "meta": meta}


def coverage_run(design: Design, *, datasets: int, resamples: int, seed: int,
                 population: dict[str, float]) -> dict[str, float]:
    """Share of data sets whose 95 % interval covers the population value, per interval; the share in
    which the comparison of two equally good metrics is significant (false positives; unadjusted
    p < 0.05), and of good vs weak (power); how often a comparison's p < 0.05 and its CI excluding 0
    agree; and the perfect metric's margin over the ceiling."""
    with threadpool_limits(limits=1, user_api="blas"):
        return _coverage_run(design, datasets=datasets, resamples=resamples, seed=seed, population=population)


def _coverage_run(design: Design, *, datasets: int, resamples: int, seed: int,
                  population: dict[str, float]) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    hits: dict[str, list[bool]] = {k: [] for k in ("alpha", "spearman", "pearson", "kendall", "kendall_defined",
                                                    "delta_spearman", "delta_pearson", "icc")}
    significant: dict[str, list[bool]] = {k: [] for k in ("equal_spearman", "equal_pearson", "equal_williams",
                                                          "weak_spearman", "weak_pearson")}
    agree, over_ceiling, margins = [], [], []
    for d in range(datasets):
        out = dataset_intervals(design, rng=rng, resamples=resamples, seed=seed + d)
        boot, meta = out["alpha"], out["meta"]
        hits["alpha"].append(boot.ci_low <= population["alpha_ordinal"] <= boot.ci_high)
        metrics = meta["metrics"]
        good = metrics["good"]
        for method in ("spearman", "pearson", "kendall"):
            low, high = good[method]["ci"] or (np.nan, np.nan)  # no interval counts as a miss
            hits[method].append(low <= population[f"{method}_good"] <= high)
        hits["kendall_defined"].append(good["kendall"]["ci"] is not None)
        for c in meta["comparisons"]:
            pair = {c["a"], c["b"]}
            agree.append((c["p"] < 0.05) == (c["ci"][0] > 0 or c["ci"][1] < 0))
            if pair == {"good", "weak"}:
                delta = population[f"{c['method']}_{c['a']}"] - population[f"{c['method']}_{c['b']}"]
                hits[f"delta_{c['method']}"].append(c["ci"][0] <= delta <= c["ci"][1])
                significant[f"weak_{c['method']}"].append(c["p"] < 0.05)
            if pair == {"good", "good2"}:
                significant[f"equal_{c['method']}"].append(c["p"] < 0.05)
                if "williams" in c:
                    significant["equal_williams"].append(c["williams"]["p"] < 0.05)
        icc = meta["reliability"]["icc"]
        target = REL.spearman_brown(reliability=population["icc_single"], factor=icc["k"])
        hits["icc"].append(icc["ci_low"] <= target <= icc["ci_high"])
        ceiling = meta["ceiling"]
        if ceiling is not None:
            r_perfect = metrics["perfect"]["pearson"]["r"]
            margins.append(r_perfect - ceiling)
            over_ceiling.append(r_perfect > ceiling + 0.05)
    result = {f"coverage_{k}": float(np.mean(v)) for k, v in hits.items() if v and k != "kendall_defined"}
    result.update({f"significant_{k}": float(np.mean(v)) for k, v in significant.items()})
    result.update({
        "p_and_ci_agree": float(np.mean(agree)),
        "perfect_minus_ceiling_mean": float(np.mean(margins)),
        "perfect_over_ceiling_plus_0.05": float(np.mean(over_ceiling)),
        "datasets": datasets,
    })
    return result


# --- the other intervals (benchmarks/ci_coverage_more.py, tests/annotations/test_coverage_more.py) ---------------

NOISE_SD, BIAS_SD, METRIC_SD = 0.8, 0.5, 0.5


def item_means(truth: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Mean of k crowd ratings per item: round(3 + T + b + e) clipped to 1..5, a new rater (leniency
    b ~ N(0, BIAS_SD)) per rating, e ~ N(0, NOISE_SD)."""
    shape = (*truth.shape, k)
    raw = 3 + truth[..., None] + rng.normal(0, BIAS_SD, shape) + rng.normal(0, NOISE_SD, shape)
    return np.clip(np.rint(raw), 1, 5).mean(axis=-1)


def grouped_world(groups: int, per: int, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """`groups` samples (faces) x `per` descriptions: metric scores and mean human ratings (groups x per).
    T = face effect N(0, 0.7) + description effect N(0, 0.7); metric = T + N(0, METRIC_SD)."""
    face = rng.normal(0, 0.7, (groups, 1))
    truth = face + rng.normal(0, 0.7, (groups, per))
    return truth + rng.normal(0, METRIC_SD, truth.shape), item_means(truth, k, rng)
