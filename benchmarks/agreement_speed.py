"""Krippendorff's alpha + 1000 bootstrap resamples on 100,000 items x 10 raters (5-point scale).

Goal: under 10 s for alpha and the bootstrap together. Compared in the same run against the
straightforward implementation of the same bootstrap: one resample at a time, drawing its M pairs
one by one from the coincidence cells (`rng.choice`) and summing their differences. That loop is
far too slow to run 1000 times, so it runs `--loop-resamples` times and is extrapolated linearly
(each resample does identical work); the printout says so.

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
    """The reference algorithm written plainly: per resample, M draws of a coincidence cell."""
    o = A.coincidences(counts)
    n_c = o.sum(axis=1)
    n_total = n_c.sum()
    delta = A.distances(domain=DOMAIN, level=level, marginals=n_c)
    d_e = (np.outer(n_c, n_c) * delta).sum() / (n_total * (n_total - 1))
    upper = np.triu_indices(len(DOMAIN))
    probs = np.where(upper[0] == upper[1], 1.0, 2.0) * o[upper] / n_total
    probs /= probs.sum()
    cell_delta = delta[upper]
    m = counts.sum(axis=1)
    draws = int((m * (m - 1) // 2).sum())
    rng = np.random.default_rng(seed)
    out = np.empty(resamples)
    for b in range(resamples):
        cells = rng.choice(len(cell_delta), size=draws, p=probs)
        out[b] = 1.0 - cell_delta[cells].sum() / (draws * d_e)
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
                                 seed=args.seed)
        t3 = time.perf_counter()
        timings.append((t1 - t0, t2 - t1, t3 - t2, t3 - t0))
    shape, alpha_s, boot_s, total = (statistics.median(t[i] for t in timings) for i in range(4))
    print(f"alpha = {point.alpha:.4f}; {args.resamples} resamples of {boot.draws} pairs: "
          f"{boot.confidence:.0%} CI [{boot.ci_low:.4f}, {boot.ci_high:.4f}], "
          f"P(alpha < {boot.alpha_min}) = {boot.p_below_min:.3f}")
    print(f"vectorised (median of {args.repeats}): counts {shape:.3f} s + alpha {alpha_s:.3f} s + "
          f"bootstrap {boot_s:.3f} s = {total:.3f} s  (target < 10 s: {'PASS' if total < 10 else 'FAIL'})")

    t0 = time.perf_counter()
    loop = loop_bootstrap(counts=counts, level=args.level, resamples=args.loop_resamples, seed=args.seed)
    loop_s = time.perf_counter() - t0
    per = loop_s / args.loop_resamples
    estimate = alpha_s + shape + per * args.resamples
    print(f"plain per-resample loop: {args.loop_resamples} resamples took {loop_s:.2f} s "
          f"({per:.3f} s each); EXTRAPOLATED to {args.resamples}: {per * args.resamples:.1f} s bootstrap, "
          f"{estimate:.1f} s with alpha")
    print(f"speed-up of the bootstrap: {per * args.resamples / boot_s:.0f}x; of the whole job: {estimate / total:.0f}x")
    print(f"same distribution: loop resamples mean {loop.mean():.4f} vs vectorised mean {boot.samples.mean():.4f} "
          f"(sd {boot.samples.std():.5f})")


if __name__ == "__main__":
    main()
