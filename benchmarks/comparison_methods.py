"""Which test and interval for a correlation, and for the difference of two metrics' correlations?

The candidates the meta-evaluation was chosen from, on the same simulated data sets (every design
of `annotations.simulation.DESIGNS`, 80 items x 5 raters): the human score is the mean rating of
items with >= 2 ratings; metrics `good`, `good2` (equally good: the null), `fair` (T + N(0, 0.8), a
little worse) and `weak`. Per design and candidate it prints the share of data sets in which
`good` vs `good2` is significant at p < 0.05 (false positives), good vs fair and good vs weak
(power), and the coverage of the 95 % interval of the difference (population values from one
simulated data set of 200,000 items). Then the coverage and mean width of the 95 % interval of
good's own correlation. Only correlations are computed (no alpha, no ICC), so it runs fast.

Differences (the p of each inverts its interval unless said otherwise):
  williams        Williams' (1959) t, Steiger (1980) eq. 7: p only (the report's old Pearson p)
  zou             Zou (2007) interval for overlapping dependent correlations (Fisher z limits)
  percentile      paired percentile bootstrap (Spearman's, and the old Pearson interval)
  centred         (1 + #{|d* - d| >= |d|}) / (B + 1) with the interval d +- q95(|d* - d|) (the old Spearman p)
  bca             BCa (acceleration from the influence values)
  bootstrap-t     symmetric bootstrap-t, influence-function SE (the report's Pearson test)
  bootstrap-t z   symmetric bootstrap-t of z_a - z_b (Fisher): p only
Spearman's influence values are Pearson's on ranks (ranks held fixed; an approximation).
Single correlations: percentile (Spearman's), BCa, normal on Fisher's z with the bootstrap SE, and
the bootstrap-t on Fisher's z (Pearson's).

    python benchmarks/comparison_methods.py                       # 1000 data sets, 1000 resamples
    python benchmarks/comparison_methods.py --datasets 200 --resamples 500
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy import optimize, stats

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from annotations import agreement as A  # noqa: E402
from annotations import metaeval as M  # noqa: E402
from annotations import simulation as S  # noqa: E402

PAIRS = (("good", "good2"), ("good", "fair"), ("good", "weak"))
FAIR_SD = 0.8
CONFIDENCE = 0.95


def zou_interval(*, r12: float, r13: float, r23: float, n: int, z: float) -> tuple[float, float]:
    """Zou (2007), eqs. 11-13: limits of r12 - r13 from each r's Fisher-z limits and corr(r12, r13)."""
    def limits(r: float) -> tuple[float, float]:
        return math.tanh(math.atanh(r) - z / math.sqrt(n - 3)), math.tanh(math.atanh(r) + z / math.sqrt(n - 3))
    (l1, u1), (l2, u2) = limits(r12), limits(r13)
    c = ((r23 - r12 * r13 / 2) * (1 - r12**2 - r13**2 - r23**2) + r23**3) / ((1 - r12**2) * (1 - r13**2))
    d = r12 - r13
    low = d - math.sqrt(max((r12 - l1) ** 2 + (u2 - r13) ** 2 - 2 * c * (r12 - l1) * (u2 - r13), 0))
    high = d + math.sqrt(max((u1 - r12) ** 2 + (r13 - l2) ** 2 - 2 * c * (u1 - r12) * (r13 - l2), 0))
    return low, high


def zou_p(*, r12: float, r13: float, r23: float, n: int) -> float:
    """The two-sided level at which Zou's interval touches 0."""
    side = 0 if r12 >= r13 else 1

    def bound(z: float) -> float:
        return zou_interval(r12=r12, r13=r13, r23=r23, n=n, z=z)[side]
    if r12 == r13:
        return 1.0
    if np.sign(bound(8.0)) == np.sign(r12 - r13):
        return 0.0
    return float(2 * stats.norm.sf(optimize.brentq(bound, 1e-9, 8.0)))


def bca(samples: np.ndarray, observed: float, influence: np.ndarray) -> tuple[list[float], float]:
    """BCa interval (Efron 1987) and the p of 0 that inverts it."""
    s = samples[~np.isnan(samples)]
    a = float(np.sum(influence**3) / (6 * np.sum(influence**2) ** 1.5))
    z0 = stats.norm.ppf((np.sum(s < observed) + 0.5 * np.sum(s == observed)) / len(s))
    zq = stats.norm.ppf([(1 - CONFIDENCE) / 2, (1 + CONFIDENCE) / 2])
    ci = np.quantile(s, stats.norm.cdf(z0 + (z0 + zq) / (1 - a * (z0 + zq))))
    w = stats.norm.ppf((np.sum(s < 0) + 0.5 * np.sum(s == 0) + 0.5) / (len(s) + 1)) - z0
    level = w / (1 + a * w) - z0
    return [float(ci[0]), float(ci[1])], float(2 * stats.norm.sf(abs(level)))


def centred(samples: np.ndarray, observed: float) -> tuple[list[float], float]:
    s = samples[~np.isnan(samples)]
    half = float(np.quantile(np.abs(s - observed), CONFIDENCE))
    p = (1 + np.sum(np.abs(s - observed) >= abs(observed) - 1e-12)) / (1 + len(s))
    return [observed - half, observed + half], float(p)


def fisher_t_difference_p(ra: float, rb: float, inf_a: np.ndarray, inf_b: np.ndarray, boot_a: np.ndarray,
                          boot_b: np.ndarray, boot_inf_a: np.ndarray, boot_inf_b: np.ndarray) -> float:
    n = inf_a.shape[-1]
    se = math.sqrt(np.mean((inf_a / (1 - ra**2) - inf_b / (1 - rb**2)) ** 2) / n)
    se_b = np.sqrt(np.mean((boot_inf_a / (1 - boot_a[:, None] ** 2) - boot_inf_b / (1 - boot_b[:, None] ** 2)) ** 2,
                           axis=1) / n)
    d = math.atanh(ra) - math.atanh(rb)
    t = (np.arctanh(boot_a) - np.arctanh(boot_b) - d) / se_b
    t = t[np.isfinite(t)]
    return float((1 + np.sum(np.abs(t) >= abs(d) / se)) / (1 + len(t)))


def single_intervals(r: float, samples: np.ndarray, influence: np.ndarray, boot_influence: np.ndarray
                     ) -> dict[str, list[float]]:
    n = influence.shape[-1]
    se, se_b = math.sqrt(np.mean(influence**2) / n), np.sqrt(np.mean(boot_influence**2, axis=1) / n)
    sd_z = float(np.std(np.arctanh(samples), ddof=1))
    z = stats.norm.ppf((1 + CONFIDENCE) / 2)
    return {
        "percentile": M._quantiles(samples, CONFIDENCE),
        "bca": bca(samples, r, influence)[0],
        "Fisher z, bootstrap SE": [math.tanh(math.atanh(r) - z * sd_z), math.tanh(math.atanh(r) + z * sd_z)],
        "bootstrap-t on Fisher z": A.fisher_t_interval(r=r, se=se, samples=samples, se_samples=se_b,
                                                         confidence=CONFIDENCE),
    }


def difference_tests(method: str, a: str, b: str, fit: dict, boot: dict, shown: dict) -> dict:
    (ra, inf_a), (rb, inf_b) = fit[a], fit[b]
    (sa, binf_a), (sb, binf_b) = boot[a], boot[b]
    n, d, diff = len(inf_a), ra - rb, sa - sb
    se = math.sqrt(np.mean((inf_a - inf_b) ** 2) / n)
    se_b = np.sqrt(np.mean((binf_a - binf_b) ** 2, axis=1) / n)
    out = {"percentile": (M._quantiles(diff, CONFIDENCE), M._percentile_p(diff)),
           "centred": centred(diff, d), "bca": bca(diff, d, inf_a - inf_b),
           "bootstrap-t": M._symmetric_t(delta=d, se=se, samples=diff, se_samples=se_b, confidence=CONFIDENCE)}
    if method == "pearson":
        r23 = float(np.corrcoef(shown[a], shown[b])[0, 1])
        z = stats.norm.ppf((1 + CONFIDENCE) / 2)
        out["williams"] = (None, M.williams_test(r12=ra, r13=rb, r23=r23, n=n)[1])
        out["zou"] = (list(zou_interval(r12=ra, r13=rb, r23=r23, n=n, z=z)), zou_p(r12=ra, r13=rb, r23=r23, n=n))
        out["bootstrap-t z"] = (None, fisher_t_difference_p(ra, rb, inf_a, inf_b, sa, sb, binf_a, binf_b))
    return out


def dataset_evaluate(design: S.Design, *, rng: np.random.Generator, resamples: int) -> dict:
    data = S.dataset_simulate(design, rng=rng)
    mean, count = S._item_means(data["units"], data["values"], design.items)
    keep = count >= 2
    human = mean[keep]
    metrics = {name: x[keep] for name, x in data["metrics"].items() if name != "perfect"}
    metrics["fair"] = (data["truth"] + rng.normal(0, FAIR_SD, design.items))[keep]
    n = len(human)
    idx = rng.integers(0, n, (resamples, n))
    out: dict = {}
    for method in ("pearson", "spearman"):
        def prep(v: np.ndarray, rows: np.ndarray | None = None, method: str = method) -> np.ndarray:
            if method == "pearson":
                return v if rows is None else v[rows]
            return stats.rankdata(v) if rows is None else stats.rankdata(v[rows], axis=1)
        h, hb = prep(human), prep(human, idx)
        fit = {k: A.pearson_influence(prep(x), h) for k, x in metrics.items()}
        boot = {k: A.pearson_influence(prep(x, idx), hb) for k, x in metrics.items()}
        out[method] = {"single": single_intervals(fit["good"][0], boot["good"][0], fit["good"][1], boot["good"][1]),
                       "pairs": {(a, b): difference_tests(method, a, b, fit, boot, metrics) for a, b in PAIRS}}
    return out


def population(design: S.Design, *, items: int, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    data = S.dataset_simulate(design, rng=rng, items=items)
    mean, count = S._item_means(data["units"], data["values"], items)
    keep = count >= 2
    metrics = {**data["metrics"], "fair": data["truth"] + rng.normal(0, FAIR_SD, items)}
    out = {}
    for name, x in metrics.items():
        out[f"spearman_{name}"] = float(stats.spearmanr(x[keep], mean[keep]).statistic)
        out[f"pearson_{name}"] = float(stats.pearsonr(x[keep], mean[keep]).statistic)
    return out


def design_run(design: S.Design, *, datasets: int, resamples: int, seed: int, pop: dict[str, float]) -> dict:
    rng = np.random.default_rng(seed)
    tally: dict = defaultdict(list)
    for _ in range(datasets):
        result = dataset_evaluate(design, rng=rng, resamples=resamples)
        for method, parts in result.items():
            truth = pop[f"{method}_good"]
            for name, ci in parts["single"].items():
                tally[(method, "single", name, "cover")].append(ci[0] <= truth <= ci[1])
                tally[(method, "single", name, "width")].append(ci[1] - ci[0])
            for (a, b), tests in parts["pairs"].items():
                delta = pop[f"{method}_{a}"] - pop[f"{method}_{b}"]
                for name, (ci, p) in tests.items():
                    tally[(method, b, name, "significant")].append(p < 0.05)
                    if ci is not None and b != "good2":
                        tally[(method, b, name, "cover")].append(ci[0] <= delta <= ci[1])
    return {k: float(np.mean(v)) for k, v in tally.items()}


def report(design: S.Design, res: dict, took: float) -> None:
    print(f"\n{design.name} ({took:.0f} s)")
    for method in ("pearson", "spearman"):
        names = [k[2] for k in res if k[0] == method and k[1] == "good2" and k[3] == "significant"]
        print(f"  {method} difference: false positives good = good2 | power good > fair, good > weak | "
              "coverage of delta good - fair, good - weak")
        for name in names:
            cover = [res.get((method, b, name, "cover")) for b in ("fair", "weak")]
            cover_s = ", ".join("—" if c is None else f"{c:.1%}" for c in cover)
            print(f"    {name:<14} {res[(method, 'good2', name, 'significant')]:6.1%} | "
                  f"{res[(method, 'fair', name, 'significant')]:6.1%}, {res[(method, 'weak', name, 'significant')]:6.1%}"
                  f" | {cover_s}")
    print("  interval of good's correlation: coverage (mean width), Pearson | Spearman")
    for name in [k[2] for k in res if k[0] == "pearson" and k[1] == "single" and k[3] == "cover"]:
        cells = [f"{res[(m, 'single', name, 'cover')]:.1%} ({res[(m, 'single', name, 'width')]:.3f})"
                 for m in ("pearson", "spearman")]
        print(f"    {name:<24} {cells[0]} | {cells[1]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", type=int, default=1000, help="simulated data sets per design")
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples per data set")
    parser.add_argument("--population-items", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=20250101)
    args = parser.parse_args()
    print(f"{args.datasets} data sets per design, {args.resamples} resamples, population from "
          f"{args.population_items} simulated items; nominal level 95 %, alpha 0.05")
    for design in S.DESIGNS:
        t0 = time.perf_counter()
        pop = population(design, items=args.population_items, seed=args.seed)
        res = design_run(design, datasets=args.datasets, resamples=args.resamples, seed=args.seed, pop=pop)
        report(design, res, time.perf_counter() - t0)


if __name__ == "__main__":
    main()
