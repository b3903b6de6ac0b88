"""The meta-evaluation's item bootstrap of Pearson and Spearman on a large study (default 100,000 items x
3 metrics, 1000 resamples): the resampled correlations with Pearson's influence values
(`metaeval._boot_correlations`), then every interval and comparison the report shows from them.
Kendall is left out: above 3000 items it is one scipy call per resample (see docs/reports.md).

    python benchmarks/correlation_speed.py                 # 100000 items, 3 metrics, 1000 resamples
    python benchmarks/correlation_speed.py --items 10000
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from annotations import metaeval as M  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--metrics", type=int, default=3)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=2, help="timed repeats (median shown)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    truth = rng.normal(0, 1, args.items)
    human = np.clip(np.rint(3 + truth + rng.normal(0, 0.8, args.items)), 1, 5)
    metrics = {f"m{i}": truth + rng.normal(0, 0.5 + 0.3 * i, args.items) for i in range(args.metrics)}
    methods = ("pearson", "spearman")
    boot_s, interval_s = [], []
    for _ in range(args.repeats):
        with threadpool_limits(limits=1, user_api="blas"):
            t0 = time.perf_counter()
            boot = M._boot_correlations(human=human, metrics=metrics, resamples=args.resamples,
                                        rng=np.random.default_rng(1), methods=methods)
            t1 = time.perf_counter()
            out = {name: M._metric_item_level(name=name, x=x, human=human, boot=boot, confidence=0.95, ceiling=None,
                                              label=name) for name, x in metrics.items()}
            rows = M._comparisons(shown=metrics, human=human, boot=boot, metrics_out=out, confidence=0.95)
            t2 = time.perf_counter()
        boot_s.append(t1 - t0)
        interval_s.append(t2 - t1)
    print(f"{args.items} items x {args.metrics} metrics, {args.resamples} resamples, Pearson + Spearman "
          f"(median of {args.repeats}): resampled correlations {statistics.median(boot_s):.1f} s, point values, "
          f"intervals and {len(rows)} comparisons {statistics.median(interval_s):.1f} s")
    m0 = out["m0"]
    print(f"m0: Pearson {m0['pearson']['r']:.4f} {m0['pearson']['ci']} ({m0['pearson']['interval']}), "
          f"Spearman {m0['spearman']['r']:.4f} {m0['spearman']['ci']}")


if __name__ == "__main__":
    main()
