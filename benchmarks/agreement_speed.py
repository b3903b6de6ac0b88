"""Krippendorff's alpha + 1000 item-bootstrap resamples on 100,000 items x 10 raters (5-point scale).

Goal: under 10 s for alpha and the item bootstrap together (the report's default interval: whole
items resampled with all their ratings). Compared in the same run against
  * the old default, the Hayes & Krippendorff (2007) pair bootstrap (vectorised; too narrow, see
    docs/reports.md) -- same job, different statistics, shown for the cost of the fix;
  * the straightforward item bootstrap: one resample at a time, index the items, rebuild the count
    matrix and call `krippendorff.alpha`. That loop is too slow to run 1000 times, so it runs
    `--loop-resamples` times and is extrapolated linearly (each resample does identical work).

    python benchmarks/agreement_speed.py            # defaults: 100000 x 10, 1000 resamples
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from annotations import agreement as A  # noqa: E402

DOMAIN = [1, 2, 3, 4, 5]


def ratings_make(*, items: int, raters: int, seed: int) -> np.ndarray:
    """Raters agree around a latent value per item, with one-step slips 30 % of the time."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(1, 6, items)
    slip = rng.random((raters, items)) < 0.3
    return np.where(slip, np.clip(truth + rng.choice([-1, 1], (raters, items)), 1, 5), truth).astype(float)


def loop_bootstrap(*, counts: np.ndarray, level: str, resamples: int, seed: int) -> np.ndarray:
    """The item bootstrap written plainly: per resample, draw items, rebuild counts, compute alpha."""
    counts = counts[counts.sum(axis=1) >= 2]
    rng = np.random.default_rng(seed)
    out = np.empty(resamples)
    for b in range(resamples):
        idx = rng.integers(0, len(counts), len(counts))
        out[b] = A.alpha_compute(value_counts=counts[idx], domain=DOMAIN, level=level).alpha
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--raters", type=int, default=10)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--loop-resamples", type=int, default=5, help="resamples the plain loop actually runs")
    parser.add_argument("--level", default="ordinal", choices=A.LEVELS)
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats of the fast path (median shown)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    data = ratings_make(items=args.items, raters=args.raters, seed=args.seed)
    print(f"data: {args.items} items x {args.raters} raters = {data.size} ratings, 5-point scale, level {args.level}")

    timings = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        counts = A.value_counts_from_matrix(data, domain=DOMAIN)
        t1 = time.perf_counter()
        point = A.alpha_compute(value_counts=counts, domain=DOMAIN, level=args.level)
        t2 = time.perf_counter()
        boot = A.alpha_bootstrap(value_counts=counts, domain=DOMAIN, level=args.level, resamples=args.resamples,
                                 seed=args.seed, method="items")
        t3 = time.perf_counter()
        hayes = A.alpha_bootstrap(value_counts=counts, domain=DOMAIN, level=args.level, resamples=args.resamples,
                                  seed=args.seed, method="hayes")
        t4 = time.perf_counter()
        timings.append((t1 - t0, t2 - t1, t3 - t2, t3 - t0, t4 - t3))
    shape, alpha_s, boot_s, total, hayes_s = (statistics.median(t[i] for t in timings) for i in range(5))
    print(f"alpha = {point.alpha:.4f}; {args.resamples} item resamples of {boot.draws} items: "
          f"{boot.confidence:.0%} CI [{boot.ci_low:.4f}, {boot.ci_high:.4f}], "
          f"P(alpha < {boot.alpha_min}) = {boot.p_below_min:.3f}, {boot.undefined_resamples} undefined")
    print(f"item bootstrap (median of {args.repeats}): counts {shape:.3f} s + alpha {alpha_s:.3f} s + "
          f"bootstrap {boot_s:.3f} s = {total:.3f} s  (target < 10 s: {'PASS' if total < 10 else 'FAIL'})")
    print(f"old default, Hayes & Krippendorff pair bootstrap: {hayes_s:.3f} s, CI [{hayes.ci_low:.4f}, "
          f"{hayes.ci_high:.4f}] (width {hayes.ci_high - hayes.ci_low:.5f} vs item "
          f"{boot.ci_high - boot.ci_low:.5f}); item/Hayes time ratio {boot_s / hayes_s:.1f}")

    t0 = time.perf_counter()
    loop = loop_bootstrap(counts=counts, level=args.level, resamples=args.loop_resamples, seed=args.seed)
    loop_s = time.perf_counter() - t0
    per = loop_s / args.loop_resamples
    estimate = alpha_s + shape + per * args.resamples
    print(f"plain per-resample item loop: {args.loop_resamples} resamples took {loop_s:.2f} s "
          f"({per:.3f} s each); EXTRAPOLATED to {args.resamples}: {per * args.resamples:.1f} s bootstrap, "
          f"{estimate:.1f} s with alpha")
    print(f"speed-up of the bootstrap: {per * args.resamples / boot_s:.0f}x; of the whole job: {estimate / total:.0f}x")
    print(f"same distribution: loop resamples mean {loop.mean():.4f} vs vectorised mean {boot.samples.mean():.4f} "
          f"(sd {boot.samples.std():.5f})")


if __name__ == "__main__":
    main()
