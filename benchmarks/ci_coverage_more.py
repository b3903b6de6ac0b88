"""Coverage of the report's other 95 % intervals, in simulations with a known truth.

`benchmarks/ci_coverage.py` covers alpha, the item-level Spearman/Pearson, their differences and ICC.
This script covers the rest, each through the report's own code:

* `means`  — per-model mean rating (`agreement.mean_bootstrap`, the report's "per-model means").
  Estimand: the population mean of the item-mean rating of that model's descriptions (items random).
* `grouped` — within-sample Kendall tau-b averaged over samples (`metaeval._grouped`). Estimand: the
  expected tau-b of one sample drawn from the population (given it is usable), samples random.
* `comparative` — best-worst counting score per description (`comparative.counting_scores`; estimand:
  P(best) - P(worst) of the description in a random 4-tuple of its sample, faces fixed) and per system
  (`comparative.system_scores`; estimand: the system's pooled score over the population of faces, from
  3000 simulated faces; faces random).
* `system` — system-level Pearson, Kendall and pairwise accuracy (`metaeval._system_level`). Systems
  are FIXED, items random. Estimand: the statistic computed on the systems' population mean metric and
  population mean human score (each system's item population; 400,000 items per system).

Rating model (as annotations.simulation): a rating is round(3 + T + b + e) clipped to 1..5, with
e ~ N(0, 0.8) and a crowd rater's leniency b ~ N(0, 0.5) (a crowd pool: a new rater per rating).
The metric is T + N(0, 0.5) (plus a fixed per-system bias at system level).

    nice -n 19 python benchmarks/ci_coverage_more.py                 # every section, 400 data sets
    nice -n 19 python benchmarks/ci_coverage_more.py --section system --datasets 1000
"""
from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from annotations import agreement as A  # noqa: E402
from annotations import comparative as C  # noqa: E402
from annotations import metaeval as M  # noqa: E402
from annotations import simulation as S  # noqa: E402

item_means, grouped_world, METRIC_SD = S.item_means, S.grouped_world, S.METRIC_SD


def covered(ci: list[float] | tuple | None, truth: float) -> bool | None:
    if ci is None or ci[0] is None:
        return None
    return bool(ci[0] - 1e-12 <= truth <= ci[1] + 1e-12)


def share(hits: list[bool | None]) -> str:
    shown = [h for h in hits if h is not None]
    if not shown:
        return "no interval"
    missing = len(hits) - len(shown)
    return f"{np.mean(shown):.1%}" + (f" ({missing} without interval)" if missing else "")


# --- per-model means --------------------------------------------------------------------------------

def means_section(*, datasets: int, resamples: int, seed: int) -> None:
    print("\n== per-model mean rating (agreement.mean_bootstrap) ==")
    for centre in (0.0, 1.3):
        for n in (10, 20, 30, 60, 120):
            for k in (3,):
                rng = np.random.default_rng(seed)
                pop = float(item_means(rng.normal(centre, 1, 2_000_000), k, rng).mean())
                hits = []
                for d in range(datasets):
                    h = item_means(rng.normal(centre, 1, n), k, rng)
                    res = A.mean_bootstrap(values=h, resamples=resamples, seed=seed + d)
                    hits.append(covered((res.ci_low, res.ci_high), pop))
                print(f"  T ~ N({centre}, 1), {n:>3} items x {k} raters (population mean {pop:.3f}): {share(hits)}")


# --- within-sample (grouped) Kendall ---------------------------------------------------------------

def _tau_b_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall tau-b per row (rows of a few items), NaN where a row has no variation."""
    i, j = np.triu_indices(x.shape[1], 1)
    sx, sy = np.sign(x[:, i] - x[:, j]), np.sign(y[:, i] - y[:, j])

    nx, ny = (sx != 0).sum(axis=1), (sy != 0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((nx > 0) & (ny > 0), (sx * sy).sum(axis=1) / np.sqrt(nx * ny), np.nan)


def grouped_section(*, datasets: int, resamples: int, seed: int) -> None:
    print("\n== within-sample Kendall tau-b, mean over samples (metaeval._grouped) ==")
    for per in (3, 5):
        rng = np.random.default_rng(seed)
        x, h = grouped_world(1_000_000, per, 3, rng)
        pop = float(np.nanmean(_tau_b_rows(x, h)))
        for groups in (10, 15, 20, 40):
            hits = []
            for d in range(datasets):
                x, h = grouped_world(groups, per, 3, rng)
                common = list(range(groups * per))
                res = M._grouped(common=common, human=h.ravel(), shown={"m": x.ravel()},
                                 groups={u: u // per for u in common}, resamples=resamples, seed=seed + d,
                                 confidence=0.95)
                hits.append(covered(res["metrics"]["m"]["ci"], pop))
            print(f"  {groups:>3} samples x {per} descriptions x 3 raters (population mean tau {pop:.3f}): "
                  f"{share(hits)}")


# --- system level -----------------------------------------------------------------------------------

def system_section(*, datasets: int, resamples: int, seed: int) -> None:
    print("\n== system level, systems fixed, items random (metaeval._system_level) ==")
    for systems, per, spread in ((3, 20, 0.4), (5, 20, 0.4), (5, 40, 0.4), (10, 10, 0.4), (10, 20, 0.4),
                                 (5, 20, 0.8)):
        world = np.random.default_rng(seed + systems)
        mu = world.normal(0, spread, systems)  # the systems' quality, fixed
        bias = world.normal(0, spread / 2, systems)  # the metric's fixed preference per system
        rng = np.random.default_rng(seed)
        pop_h = np.array([item_means(rng.normal(m, 1, 400_000), 3, rng).mean() for m in mu])
        pop_x = mu + bias
        truth = {"pearson": stats.pearsonr(pop_x, pop_h).statistic,
                 "kendall": stats.kendalltau(pop_x, pop_h).statistic,
                 "pairwise_accuracy": M._pairwise_accuracy(pop_x[None], pop_h[None])[0]}
        hits: dict[str, list] = {k: [] for k in truth}
        sys_of = np.repeat(np.arange(systems), per)
        common = list(range(len(sys_of)))
        labels = {u: f"s{sys_of[u]}" for u in common}
        for d in range(datasets):
            t = mu[sys_of] + rng.normal(0, 1, len(sys_of))
            x = t + bias[sys_of] + rng.normal(0, METRIC_SD, len(sys_of))
            h = item_means(t, 3, rng)
            res = M._system_level(common=common, human=h, shown={"m": x}, systems=labels, resamples=resamples,
                                  seed=seed + d, confidence=0.95)["metrics"]["m"]
            hits["pearson"].append(covered(res["pearson"]["ci"], truth["pearson"]) if "pearson" in res else None)
            hits["kendall"].append(covered(res["kendall"]["ci"], truth["kendall"]) if "kendall" in res else None)
            hits["pairwise_accuracy"].append(covered(res.get("pairwise_accuracy_ci"), truth["pairwise_accuracy"]))
        print(f"  {systems:>2} systems x {per} items x 3 raters, system spread {spread} (true r {truth['pearson']:.3f}, "
              f"tau {truth['kendall']:.3f}, pairwise acc {truth['pairwise_accuracy']:.3f}): "
              + ", ".join(f"{k} {share(v)}" for k, v in hits.items()))


# --- comparative (best-worst) counting scores -------------------------------------------------------

def _bws_choices(quality: np.ndarray, per: int, per_unit: int, noise: float, rng: np.random.Generator,
                 ) -> tuple[list, dict[int, int]]:
    """A K&M design (4-tuples, 8 appearances per description) over samples of `per` descriptions, and
    `per_unit` best-worst choices per unit: best = highest quality + N(0, noise), worst = lowest."""
    groups = {g: list(range(g * per, (g + 1) * per)) for g in range(len(quality) // per)}
    design = C.design_generate(groups=groups, seed=int(rng.integers(1 << 31)))
    units = np.array([u.items for u in design.units])
    perceived = quality[units][None] + rng.normal(0, noise, (per_unit, *units.shape))
    best = units[np.arange(len(units)), perceived.argmax(axis=2)]
    worst = units[np.arange(len(units)), perceived.argmin(axis=2)]
    choices = [C.Choice(unit=u, shown=tuple(units[u].tolist()), best=int(best[a, u]), worst=int(worst[a, u]),
                        annotator=a) for a in range(per_unit) for u in range(len(units))]
    return choices, {i: i // per for i in range(len(quality))}


def _bws_truth(quality: np.ndarray, per: int, noise: float, rng: np.random.Generator, draws: int = 4000) -> np.ndarray:
    """Each description's population counting score: P(best) - P(worst) over every 4-tuple of its sample that
    holds it (a K&M design's units are near-uniform such tuples) and the choice noise."""
    out = np.empty(len(quality))
    for g in range(len(quality) // per):
        q = quality[g * per:(g + 1) * per]
        tuples = np.array(list(itertools.combinations(range(per), 4)))
        perceived = q[tuples][None] + rng.normal(0, noise, (draws, *tuples.shape))
        best = tuples[np.arange(len(tuples)), perceived.argmax(axis=2)]
        worst = tuples[np.arange(len(tuples)), perceived.argmin(axis=2)]
        for j in range(per):
            holds = (tuples == j).any(axis=1)
            out[g * per + j] = ((best[:, holds] == j).mean() - (worst[:, holds] == j).mean())
    return out


def comparative_section(*, datasets: int, resamples: int, seed: int) -> None:
    print("\n== best-worst counting score per description and per system (comparative.counting_scores, "
          "system_scores) ==")
    for samples, per, per_unit in ((20, 8, 2), (20, 8, 4), (10, 6, 3)):
        noise = 1.0
        world = np.random.default_rng(seed + per)
        system_effect = np.linspace(-0.5, 0.5, per)  # description j of every sample comes from system j
        quality = (system_effect[None] + world.normal(0, 0.8, (samples, per))).ravel()
        truth = _bws_truth(quality, per, noise, world)
        # A system's population score: faces random, so its pooled score over very many simulated samples.
        big = (system_effect[None] + world.normal(0, 0.8, (3000, per))).ravel()
        big_truth = _bws_truth(big, per, noise, world, draws=100)
        sys_truth = big_truth.reshape(3000, per).mean(axis=0)
        rng = np.random.default_rng(seed)
        item_hits, sys_hits = [], []
        for d in range(datasets):
            choices, groups = _bws_choices(quality, per, per_unit, noise, rng)
            res = C.counting_scores(choices, groups=groups, resamples=resamples, seed=seed + d)
            order = np.array(res.items)
            item_hits.extend(((res.ci_low <= truth[order] + 1e-12) & (truth[order] <= res.ci_high + 1e-12)).tolist())
            # Systems over new faces each time (faces random):
            fresh = (system_effect[None] + rng.normal(0, 0.8, (samples, per))).ravel()
            choices, groups = _bws_choices(fresh, per, per_unit, noise, rng)
            sys_res = C.system_scores(choices, system_of={i: i % per for i in range(len(fresh))}, groups=groups,
                                      resamples=resamples, seed=seed + d,
                                      bradley_terry_ci=False)
            low, high = sys_res.counting_ci
            names = np.array(sys_res.systems)
            sys_hits.extend(((low <= sys_truth[names]) & (sys_truth[names] <= high)).tolist())
        print(f"  {samples} samples x {per} descriptions, 4-tuples x 8 appearances, {per_unit} choices per unit: "
              f"description score {np.mean(item_hits):.1%}; system score (faces random) {np.mean(sys_hits):.1%}")


# --- classification tables (inference.metrics) ------------------------------------------------------

def classification_section(*, datasets: int, resamples: int, seed: int) -> None:
    from inference import metrics as IM

    print("\n== classification tables (inference.metrics) ==")
    for n in (30, 100, 200):
        # Wilson: exact coverage, summing the binomial probabilities of the outcomes whose interval covers p.
        cells = []
        for p in (0.5, 0.8, 0.95):
            ks = np.arange(n + 1)
            inside = np.array([(lambda lo_hi: lo_hi[0] <= p <= lo_hi[1])(IM.wilson_interval(int(k), n)) for k in ks])
            cells.append(f"p={p}: {stats.binom.pmf(ks, n, p)[inside].sum():.1%}")
        print(f"  accuracy (Wilson), {n} samples, exact: " + ", ".join(cells))
    rng = np.random.default_rng(seed)
    for n in (30, 100):
        for p_ab, p_ba in ((0.10, 0.10), (0.15, 0.05), (0.05, 0.01)):
            hits = []
            for _ in range(datasets):
                cell = rng.choice(4, n, p=[p_ab, p_ba, 0.5, 0.5 - p_ab - p_ba])
                a, b = (cell == 0) | (cell == 2), (cell == 1) | (cell == 2)
                res = IM.mcnemar_test(a.tolist(), b.tolist())
                hits.append(res["ci_low"] <= p_ab - p_ba <= res["ci_high"])
            print(f"  accuracy difference (Bonett-Price), {n} samples, discordant {p_ab}/{p_ba}: {np.mean(hits):.1%}")
    for n in (20, 50, 100):
        hits = []
        cov = np.array([[1.0, 0.7], [0.7, 1.0]])
        truth = 2 * 0.7 / (1 + 1 + 0.3**2)  # means 0 and 0.3, unit variances, correlation 0.7
        for d in range(datasets):
            xy = rng.multivariate_normal([0, 0.3], cov, n)
            res = IM.ccc_bootstrap(xy[:, 0], xy[:, 1], resamples=resamples, seed=seed + d)
            hits.append(res["ci_low"] <= truth <= res["ci_high"])
        print(f"  concordance correlation (ccc_bootstrap), {n} samples, bivariate normal, CCC {truth:.3f}: "
              f"{np.mean(hits):.1%}")


SECTIONS = {"means": means_section, "grouped": grouped_section, "system": system_section, "classification": classification_section,
            "comparative": comparative_section}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", type=int, default=400)
    parser.add_argument("--resamples", type=int, default=500)
    parser.add_argument("--seed", type=int, default=20250101)
    parser.add_argument("--section", action="append", choices=sorted(SECTIONS), help="repeatable; default all")
    args = parser.parse_args()
    print(f"{args.datasets} data sets per design, {args.resamples} resamples; nominal level 95 %")
    for name in args.section or SECTIONS:
        t0 = time.perf_counter()
        with threadpool_limits(limits=1, user_api="blas"):
            SECTIONS[name](datasets=args.datasets, resamples=args.resamples, seed=args.seed)
        print(f"  ({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
