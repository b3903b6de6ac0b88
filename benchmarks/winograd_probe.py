"""Winograd F(4x4, 3x3) FaceChannel (inference/va/winograd.py) against the ONNX Runtime fp32 model, in one run.

    flock /tmp/bench.lock .venv/bin/python benchmarks/winograd_probe.py [--seconds 2] [--rounds 3] [--threads 2]

Both models are built from the synthetic-weights fixture (same architecture and cost as the real
DimensionalFaceChannel.h5) and timed alternately, `rounds` times each, at batch 32 and at batch 1 (9 faces,
one per call); the figures are the medians. Accuracy: max |dVA| of each against the eager port on the
fixture's 9 inputs, the sample faces (each also mirrored) and 64 uniform random inputs. Also printed: the
first call's time (numba compiles the kernels, or loads them from its cache) and the 1-minute load before
and after (2 cores shared with other work: compare ratios of the same run, not absolute figures).

Measured 2026-12-02 09:25-09:53 UTC on the 2-core AVX-512 AMD EPYC, never idle (load 1.3-4.4 from niced test
runs; the machine gave about a quarter of its idle rate): batch 32, Winograd / ONNX Runtime fp32 = 1.66, 1.77,
1.39, 1.82, 1.72, 1.58, 1.51, 1.71, 1.54, 1.54x (e.g. 119.5 vs 77.6 images/s at load 1.93 -> 2.61), with --threads 1
1.76x (143.5 vs 81.5); batch 1: 0.56-1.02x with one core against ONNX Runtime's two; 09:58, after a single
image's products moved to all threads: 1.68x at batch 32 (243.2 vs 144.6), 0.86x at batch 1; max |dVA| vs the eager port
7.5e-7 (ONNX Runtime 7.2e-7). Table and the va_throughput runs: docs/va.md.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from benchmarks.va_throughput import FIXTURE, SYNTHETIC, _rate, _setup  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=2.0, help="Measuring time per variant and round.")
    parser.add_argument("--rounds", type=int, default=3, help="Alternations of the two models (default 3).")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads per model (default: cores).")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    _setup(args.threads)
    import numpy as np
    import torch

    from inference.va.facechannel import OnnxFaceChannel, load
    from inference.va.quantize import calibration_faces, max_deviation
    from inference.va.winograd import WinogradFaceChannel

    port = load(str(SYNTHETIC))
    ort = OnnxFaceChannel.from_port(port, threads=args.threads)
    start = time.perf_counter()
    wino = WinogradFaceChannel.from_port(port, threads=args.threads)
    with torch.inference_mode():
        wino(torch.zeros(1, 1, 64, 64))
    first = time.perf_counter() - start
    fixture = np.load(FIXTURE / "inputs_9x1x64x64_float32.npy")
    samples, _ = calibration_faces()
    rand = np.random.default_rng(0).random((64, 1, 64, 64), dtype=np.float32)
    batch32 = torch.from_numpy(np.concatenate([fixture] * 4)[:32])
    singles = [torch.from_numpy(face[None]) for face in fixture]

    def b32(model: torch.nn.Module):  # noqa: ANN202
        def go() -> int:
            with torch.inference_mode():
                model(batch32)
            return 32
        return go

    def b1(model: torch.nn.Module):  # noqa: ANN202
        def go() -> int:
            with torch.inference_mode():
                for face in singles:
                    model(face)
            return len(singles)
        return go

    rates: dict[str, list[float]] = {key: [] for key in ("ort32", "wino32", "ort1", "wino1")}
    for _ in range(args.rounds):
        rates["ort32"].append(_rate(b32(ort), args.seconds))
        rates["wino32"].append(_rate(b32(wino), args.seconds))
        rates["ort1"].append(_rate(b1(ort), args.seconds))
        rates["wino1"].append(_rate(b1(wino), args.seconds))
    med = {key: statistics.median(values) for key, values in rates.items()}
    print(f"cores={os.cpu_count()} threads={args.threads} load_avg_1min before={load_before:.2f} "
          f"(shared machine: compare ratios of this run)")
    print(f"winograd: {wino.runtime}; first call (build + compile or cache load) {first:.1f} s")
    for batch in ("32", "1"):
        ratio = med[f"wino{batch}"] / med[f"ort{batch}"]
        print(f"batch {batch:>2}: ONNX Runtime fp32 {med['ort' + batch]:7.1f}  Winograd {med['wino' + batch]:7.1f} "
              f"images/s  ratio {ratio:.2f}x  (rounds: ort {[round(r) for r in rates['ort' + batch]]}, "
              f"winograd {[round(r) for r in rates['wino' + batch]]})")
    ratio32 = med["wino32"] / med["ort32"]
    worst = 0.0
    for name, faces in (("fixture", fixture), ("sample faces", samples), ("random", rand)):
        dev_w, dev_o = max_deviation(port, wino, faces), max_deviation(port, ort, faces)
        worst = max(worst, dev_w)
        print(f"max |dVA| vs eager port, {name} ({len(faces)}): Winograd {dev_w:.2e}, ONNX Runtime {dev_o:.2e}")
    verdict = "GO" if ratio32 >= 1.3 and worst <= 1e-4 else "NO-GO"
    print(f"batch-32 ratio {ratio32:.2f}x (go >= 1.3x), max |dVA| {worst:.1e} (go <= 1e-4): {verdict} for this run")
    print(f"load_avg_1min after={os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
