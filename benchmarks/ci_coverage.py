"""Coverage of every 95 % interval the report shows, in simulated studies with known population values.

For each design in `annotations.simulation.DESIGNS` (latent item score + rater noise; with and
without rater bias and missing ratings; 80 items x 5 raters by default) the population values come
from one simulated data set of 200,000 items of the same design (not analytic: the 5-point rounding
has none). Then `--datasets` small data sets go through the report's own code (alpha_bootstrap and
metaeval_compute) and the script prints, per design, the share of data sets whose interval covers the
population value (alpha, Spearman, Pearson, differences of correlations, ICC), the share in which two
equally good metrics differ significantly (the p the report uses: percentile bootstrap for Spearman,
symmetric bootstrap-t for Pearson; and Williams' test, now a secondary figure; unadjusted p < 0.05),
the share in which the good metric is found better than the weak one (power), whether every
comparison's p < 0.05 agreed with its CI excluding 0, and how far a perfect metric (= the latent
score) lands above the ceiling sqrt(R). A second line shows the Hayes & Krippendorff alpha interval's coverage on the same
data sets, for comparison.

    python benchmarks/ci_coverage.py                      # 400 data sets per design, 500 resamples
    python benchmarks/ci_coverage.py --datasets 100 --resamples 200
    python benchmarks/ci_coverage.py --datasets 4000 --design 2   # one design (index into DESIGNS)
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from annotations import agreement as A  # noqa: E402
from annotations import simulation as S  # noqa: E402


def hayes_coverage(design: S.Design, *, datasets: int, resamples: int, seed: int, truth: float) -> float:
    rng = np.random.default_rng(seed)
    hits = []
    for d in range(datasets):
        data = S.dataset_simulate(design, rng=rng)
        counts = A.value_counts_from_long(units=data["units"], values=data["values"], domain=S.DOMAIN)
        boot = A.alpha_bootstrap(value_counts=counts, domain=S.DOMAIN, level="ordinal", resamples=resamples,
                                 seed=seed + d, method="hayes")
        hits.append(boot.ci_low <= truth <= boot.ci_high)
    return float(np.mean(hits))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", type=int, default=400, help="simulated data sets per design")
    parser.add_argument("--resamples", type=int, default=500, help="bootstrap resamples per interval")
    parser.add_argument("--population-items", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=20250101)
    parser.add_argument("--design", type=int, action="append", help="only this design (index into DESIGNS); "
                        "repeatable; default all")
    args = parser.parse_args()
    print(f"{args.datasets} data sets per design, {args.resamples} resamples, population from "
          f"{args.population_items} simulated items; nominal level 95 %")
    for design in [S.DESIGNS[i] for i in args.design] if args.design else S.DESIGNS:
        t0 = time.perf_counter()
        pop = S.population_compute(design, items=args.population_items, seed=args.seed)
        res = S.coverage_run(design, datasets=args.datasets, resamples=args.resamples, seed=args.seed,
                             population=pop)
        with threadpool_limits(limits=1, user_api="blas"):
            hayes = hayes_coverage(design, datasets=args.datasets, resamples=args.resamples, seed=args.seed,
                                   truth=pop["alpha_ordinal"])
        took = time.perf_counter() - t0
        print(f"\n{design.name} ({design.items} items x {design.raters} raters; population alpha "
              f"{pop['alpha_ordinal']:.3f}, rho(good) {pop['spearman_good']:.3f}, single-rater ICC {pop['icc_single']:.3f}; "
              f"{took:.0f} s)")
        print("  coverage: " + ", ".join(f"{k.removeprefix('coverage_')} {v:.1%}" for k, v in res.items()
                                         if k.startswith("coverage_")))
        print(f"  alpha, Hayes & Krippendorff pair bootstrap (old default): {hayes:.1%}")
        print(f"  equally good metrics significant: Spearman {res['significant_equal_spearman']:.1%}, "
              f"Pearson {res['significant_equal_pearson']:.1%} (Williams, secondary: "
              f"{res['significant_equal_williams']:.1%}); good vs weak found (power): Spearman "
              f"{res['significant_weak_spearman']:.1%}, Pearson {res['significant_weak_pearson']:.1%}; "
              f"p < 0.05 iff CI excludes 0 in {res['p_and_ci_agree']:.1%} of comparisons")
        print(f"  perfect metric minus ceiling: mean {res['perfect_minus_ceiling_mean']:+.3f}; above ceiling + 0.05 "
              f"in {res['perfect_over_ceiling_plus_0.05']:.1%} of data sets")


if __name__ == "__main__":
    main()
