"""Reliability per paid judgment: Likert ratings against best–worst scaling (BWS) and pairwise choices.

Goal (issue #16): BWS reaches a split-half reliability of 0.8 with at most half the judgments Likert needs.
A judgment is one submitted unit: one Likert rating of one description, one best+worst choice on a 4-tuple,
one pairwise choice. Worker time per judgment differs by instrument; it is taken from
settings.JUDGMENT_SECONDS (env JUDGMENT_SECONDS_LIKERT / _BWS / _PAIRWISE).

Simulation (the same latent qualities and the same raters drive every instrument):
  * S samples (faces) × m descriptions each; description quality q ~ N(0, 1).
  * R raters; rater r has an additive bias b_r ~ N(0, σ_b) (scale use: lenient or harsh); every judgment
    adds independent noise e ~ N(0, σ_e) to each description it looks at.
  * Likert (5 points): perceived q + b_r + e, cut at fixed thresholds (−1.2, −0.4, 0.4, 1.2).
  * BWS: the description with the highest q + e is best, the lowest worst (a rater's additive bias is
    the same for the 4 descriptions, so it cancels: that is the model's — and K&M's — argument, stated).
  * pairwise: the higher q + e wins (no ties).
The default noise is calibrated, not tuned: σ_b = 0.5 σ_e, and σ_e is found by bisection such that
Likert with k = 3 raters per description reaches a split-half reliability (Spearman–Brown) of 0.60.
Designs and scores are the real ones (annotations.comparative: design_generate, counting scores for BWS,
Bradley–Terry via choix for pairwise; annotations.agreement.split_half for Likert; K&M split-half for
the comparative ones). Reliability per budget is the split-half SB averaged over random splits;
"truth r" is the correlation of the scores with the simulated quality (validity, shown for reference).

    python benchmarks/judgment_efficiency.py                 # defaults: 40 samples × 8 descriptions, 3 studies
    python benchmarks/judgment_efficiency.py --samples 20 --reps 1    # quicker
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "evalplatform.settings")

from django.conf import settings  # noqa: E402

from annotations import agreement, comparative  # noqa: E402

CUTS = np.array([-1.2, -0.4, 0.4, 1.2])
LIKERT_K = (2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 40)
# (appearances per description, choices per unit): K&M's 2N tuples are appearances 8 for 4-tuples.
BWS_DESIGNS = ((1, 2), (2, 2), (4, 2), (4, 3), (8, 2), (8, 3), (8, 4), (8, 5), (8, 6), (8, 8), (8, 10), (8, 12), (8, 16))
PAIR_DESIGNS = ((2, 2), (4, 2), (4, 3), (7, 2), (7, 3), (7, 4), (7, 6), (7, 8), (7, 12))
TARGETS = (0.8, 0.9)


@dataclass
class World:
    quality: np.ndarray  # per description
    group: np.ndarray  # sample of each description
    bias: np.ndarray  # per rater
    noise: float


@dataclass
class Point:
    instrument: str
    design: str
    per_description: float  # paid judgments per description
    reliability: float | None
    truth_r: float


def world_make(*, samples: int, per_sample: int, raters: int, noise: float, bias_ratio: float,
               rng: np.random.Generator) -> World:
    n = samples * per_sample
    return World(quality=rng.normal(size=n), group=np.repeat(np.arange(samples), per_sample),
                 bias=rng.normal(0, bias_ratio * noise, raters), noise=noise)


def likert_point(world: World, *, k: int, rng: np.random.Generator, splits: int) -> Point:
    n = len(world.quality)
    raters = np.argsort(rng.random((n, len(world.bias))), axis=1)[:, :k]  # k distinct raters per description
    perceived = world.quality[:, None] + world.bias[raters] + rng.normal(0, world.noise, (n, k))
    values = np.digitize(perceived, CUTS) + 1
    units = np.repeat(np.arange(n), k)
    half = agreement.split_half(units=units, values=values.ravel(), splits=splits, seed=int(rng.integers(1 << 31)))
    truth = stats.spearmanr(values.mean(axis=1), world.quality)[0]
    return Point("Likert", f"k={k}", float(k), half.spearman_brown, float(truth))


def _groups(world: World) -> dict[int, list[int]]:
    return {int(g): np.flatnonzero(world.group == g).tolist() for g in np.unique(world.group)}


def comparative_point(world: World, *, size: int, appearances: int, per_unit: int, rng: np.random.Generator,
                      splits: int, method: str) -> Point:
    design = comparative.design_generate(groups=_groups(world), size=size, appearances=appearances,
                                         seed=int(rng.integers(1 << 31)))
    units = np.array([u.items for u in design.units])
    perceived = world.quality[units][None] + rng.normal(0, world.noise, (per_unit, *units.shape))
    best, worst = units[np.arange(len(units)), perceived.argmax(axis=2)], units[np.arange(len(units)),
                                                                                 perceived.argmin(axis=2)]
    choices = [
        comparative.Choice(unit=u, shown=tuple(units[u].tolist()), best=int(best[a, u]), worst=int(worst[a, u]))
        for a in range(per_unit) for u in range(len(units))
    ]
    groups = {int(i): int(world.group[i]) for i in range(len(world.quality))}
    half = comparative.split_half(choices, method=method, groups=groups, splits=splits,
                                  seed=int(rng.integers(1 << 31)))
    scored = comparative.scores_compute(choices, method=method, groups=groups, resamples=0)
    truth = stats.spearmanr(scored.scores, world.quality[np.array(scored.items)])[0]
    name = "BWS" if size == comparative.BWS_SIZE else "pairwise"
    per_description = len(choices) / len(world.quality)
    return Point(name, f"{appearances} units/description × {per_unit} choices/unit", per_description,
                 half.spearman_brown, float(truth))


def curves(world: World, *, rng: np.random.Generator, splits: int, bt_splits: int) -> dict[str, list[Point]]:
    out = {"Likert": [likert_point(world, k=k, rng=rng, splits=splits) for k in LIKERT_K]}
    out["BWS"] = [comparative_point(world, size=4, appearances=a, per_unit=r, rng=rng, splits=splits,
                                    method="counting") for a, r in BWS_DESIGNS]
    out["pairwise"] = [comparative_point(world, size=2, appearances=a, per_unit=r, rng=rng, splits=bt_splits,
                                         method="bradley_terry") for a, r in PAIR_DESIGNS]
    return out


def curves_averaged(worlds: list[World], *, rng: np.random.Generator, splits: int,
                    bt_splits: int) -> dict[str, list[Point]]:
    """Each design point averaged over independent simulated studies (one study's curve is noisy)."""
    runs = [curves(world, rng=rng, splits=splits, bt_splits=bt_splits) for world in worlds]
    out: dict[str, list[Point]] = {}
    for name, points in runs[0].items():
        out[name] = []
        for i, first in enumerate(points):
            rel = [run[name][i].reliability for run in runs]
            out[name].append(Point(
                first.instrument, first.design, float(np.mean([run[name][i].per_description for run in runs])),
                None if any(r is None for r in rel) else float(np.mean(rel)),
                float(np.mean([run[name][i].truth_r for run in runs])),
            ))
    return out


def needed(points: list[Point], target: float) -> tuple[float | None, bool]:
    """Judgments per description at which the curve first reaches the target (linear between points).

    The flag is True when the smallest budget measured already reaches it: then the figure is an upper bound.
    """
    ordered = sorted((p for p in points if p.reliability is not None), key=lambda p: p.per_description)
    previous = None
    for point in ordered:
        if point.reliability >= target:
            if previous is None:
                return point.per_description, True
            x0, y0, x1, y1 = previous.per_description, previous.reliability, point.per_description, point.reliability
            return x0 + (target - y0) * (x1 - x0) / (y1 - y0), False
        previous = point
    return None, False


def calibrate(*, samples: int, per_sample: int, raters: int, bias_ratio: float, target: float,
              seed: int) -> tuple[float, float]:
    """σ_e such that Likert k = 3 reaches the target split-half SB (bisection; 3 worlds averaged per step)."""
    low, high = 0.05, 5.0
    value = float("nan")
    for _ in range(18):
        mid = (low + high) / 2
        values = []
        for rep in range(3):
            rng = np.random.default_rng(seed + rep)
            world = world_make(samples=samples, per_sample=per_sample, raters=raters, noise=mid,
                               bias_ratio=bias_ratio, rng=rng)
            values.append(likert_point(world, k=3, rng=rng, splits=40).reliability)
        value = float(np.mean(values))
        low, high = (mid, high) if value > target else (low, mid)
    return (low + high) / 2, value


def _fmt(x: float | None, digits: int = 1) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=40, help="samples (faces)")
    parser.add_argument("--per-sample", type=int, default=8, help="descriptions per sample (systems × prompts)")
    parser.add_argument("--raters", type=int, default=100, help="rater pool")
    parser.add_argument("--bias-ratio", type=float, default=0.5, help="σ_b / σ_e (rater bias relative to noise)")
    parser.add_argument("--noise", type=float, default=None, help="σ_e; default: calibrated to the target below")
    parser.add_argument("--calibrate-to", type=float, default=0.6, help="Likert k=3 split-half to calibrate σ_e to")
    parser.add_argument("--splits", type=int, default=40, help="random splits per split-half (Likert, BWS)")
    parser.add_argument("--bt-splits", type=int, default=8, help="random splits for pairwise Bradley–Terry")
    parser.add_argument("--reps", type=int, default=3, help="simulated studies averaged per design point")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.perf_counter()
    seconds = settings.JUDGMENT_SECONDS
    n = args.samples * args.per_sample

    if args.noise is None:
        noise, reached = calibrate(samples=args.samples * 4, per_sample=args.per_sample, raters=args.raters,
                                   bias_ratio=args.bias_ratio, target=args.calibrate_to, seed=args.seed + 1000)
        how = f"calibrated: Likert k=3 split-half SB {reached:.3f} (target {args.calibrate_to})"
    else:
        noise, how = args.noise, "set with --noise"
    print(f"Noise model: σ_e = {noise:.3f} per judgment ({how}), rater bias σ_b = {args.bias_ratio * noise:.3f}, "
          f"quality ~ N(0, 1); {args.samples} samples × {args.per_sample} descriptions = {n} descriptions, "
          f"{args.raters} raters; 5-point Likert cut at {CUTS.tolist()}")
    print(f"Seconds per judgment (settings.JUDGMENT_SECONDS): Likert {seconds['likert']:g}, BWS {seconds['bws']:g}, "
          f"pairwise {seconds['pairwise']:g}")
    print("Likert k = raters per description; BWS/pairwise: units each description appears in × choices per unit. "
          f"Split-half = Spearman–Brown corrected, averaged over random splits and over {args.reps} simulated studies. "
          "truth r = Spearman of the scores with the simulated quality: BWS/pairwise scores are relative to the "
          "other descriptions of the same sample, so they cannot recover differences between samples.\n")

    ratios = {}
    for label, factor in (("default", 1.0), ("noise halved", 0.5), ("noise doubled", 2.0)):
        rng = np.random.default_rng(args.seed)
        worlds = [world_make(samples=args.samples, per_sample=args.per_sample, raters=args.raters,
                             noise=noise * factor, bias_ratio=args.bias_ratio, rng=rng) for _ in range(args.reps)]
        result = curves_averaged(worlds, rng=rng, splits=args.splits, bt_splits=args.bt_splits)
        if label == "default":
            print(f"{'instrument':<9} {'design':<42} {'judgm./descr.':>13} {'split-half':>10} {'truth r':>8}")
            for instrument, points in result.items():
                for p in points:
                    print(f"{instrument:<9} {p.design:<42} {p.per_description:>13.1f} {_fmt(p.reliability, 3):>10} "
                          f"{p.truth_r:>8.3f}")
            print()
        print(f"[{label}: σ_e = {noise * factor:.3f}, σ_b = {args.bias_ratio * noise * factor:.3f}]")
        k3 = next(p for p in result["Likert"] if p.design == "k=3").reliability
        k5 = next(p for p in result["Likert"] if p.design == "k=5").reliability
        print(f"  Likert k=3 split-half {_fmt(k3, 3)}, k=5 {_fmt(k5, 3)}")
        need = {name: {t: needed(points, t) for t in TARGETS} for name, points in result.items()}
        key = {"Likert": "likert", "BWS": "bws", "pairwise": "pairwise"}
        for name in result:
            cells = []
            for t in TARGETS:
                per, bound = need[name][t]
                if per is None:
                    cells.append(f"{t}: not reached within the budgets measured")
                    continue
                hours = per * n * seconds[key[name]] / 3600
                mark = "≤ " if bound else ""
                cells.append(f"{t}: {mark}{per:.1f}/description = {mark}{per * n:.0f} judgments, {hours:.1f} worker-h")
            print(f"  {name:<9} " + " | ".join(cells))
        for t in TARGETS:
            (lik, lik_bound), (bws, bws_bound), (pair, _) = need["Likert"][t], need["BWS"][t], need["pairwise"][t]
            if lik and bws:
                time_ratio = bws * seconds["bws"] / (lik * seconds["likert"])
                pair_txt = (f", pairwise/Likert {pair / lik:.2f}" if pair else ", pairwise not reached")
                caveat = " (bounds: one curve starts above the target, the ratio is uncertain)" if (
                    lik_bound or bws_bound) else ""
                print(f"  at {t}: BWS/Likert judgments ratio {bws / lik:.2f} (worker-time ratio {time_ratio:.2f})"
                      f"{pair_txt}{caveat}")
                ratios[(label, t)] = bws / lik
        print()
    default = ratios.get(("default", 0.8))
    if default is not None:
        verdict = "meets" if default <= 0.5 else "does NOT meet"
        print(f"Goal (BWS reaches 0.8 with at most half the Likert judgments): ratio {default:.2f} — {verdict} the goal "
              f"under the default noise; noise halved {_fmt(ratios.get(('noise halved', 0.8)), 2)}, "
              f"doubled {_fmt(ratios.get(('noise doubled', 0.8)), 2)}.")
    print(f"Run time {time.perf_counter() - started:.0f} s (2 shared CPU cores; load affects only the time).")


if __name__ == "__main__":
    main()
