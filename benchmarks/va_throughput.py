"""VA stage throughput: FaceChannel forward alone, and the whole stage, each against a naive per-image loop.

    python benchmarks/va_throughput.py [--seconds 3] [--threads 2] [--images 32]

1. Model: the PyTorch FaceChannel Dim (synthetic-weights fixture: same architecture and cost as the real
   DimensionalFaceChannel.h5, which cannot be downloaded here) at batch 1 and batch 32, in images/s,
   against a naive loop (the eager port, one image per forward, autograd on), and the eager port at
   batch 32 to show what the TorchScript inference model adds.
2. Stage: decode + detect (YuNet) + crop/preprocess + model on the sample faces, as the service runs it
   (threaded decode/detect, one batched forward per chunk), against a naive sequential loop per image.
Both sides of each ratio are measured in the same run, so machine load affects them alike (other
engineers share this CPU; say so when quoting figures).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
ASSETS = REPO.parent / "shared" / "assets"
SYNTHETIC = ASSETS / "facechannel" / "synthetic-test-fixture" / "facechannel_dim_SYNTHETIC_random_weights.h5"
FACE_FILES = ["angry.jpg", "happy-baby.jpeg", "neutral.jpeg", "sad-baby.jpeg", "surprised.jpeg", "astronaut.png",
              "obama.jpg", "biden.jpg", "obama-speech.jpg", "group.jpeg"]


def _rate(run: Callable[[], int], seconds: float) -> float:
    """Items per second of `run` (which returns how many items it processed), after one warm-up call."""
    run()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        count += run()
    return count / (time.perf_counter() - start)


def _setup(threads: int) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "evalplatform.settings")
    os.environ["FACECHANNEL_WEIGHTS"] = str(SYNTHETIC)
    os.environ["MEDIA_ROOT"] = str(ASSETS)  # Sample.image names below are relative to it
    import django
    import torch

    django.setup()
    # One intra-op thread per core; more only adds contention on a 2-core machine.
    torch.set_num_threads(threads)


def bench_model(seconds: float) -> dict[str, float]:
    import numpy as np
    import torch

    from inference.va.facechannel import facechannel_load

    loaded = facechannel_load()
    model, port = loaded.model, loaded.port  # optimised inference model / eager port as `load` built it
    faces = np.load(SYNTHETIC.parent / "inputs_9x1x64x64_float32.npy")
    batch32 = torch.from_numpy(np.concatenate([faces] * 4)[:32])
    single = [torch.from_numpy(face[None]) for face in faces]

    def naive() -> int:
        for face in single:
            port(face)  # the eager port, autograd bookkeeping on, one image per call
        return len(single)

    def port_batched() -> int:
        with torch.inference_mode():
            port(batch32)
        return len(batch32)

    def batch1() -> int:
        with torch.inference_mode():
            for face in single:
                model(face)
        return len(single)

    def batched() -> int:
        with torch.inference_mode():
            model(batch32)
        return len(batch32)

    return {"naive": _rate(naive, seconds), "batch1": _rate(batch1, seconds),
            "port32": _rate(port_batched, seconds), "batch32": _rate(batched, seconds)}


def bench_stage(seconds: float, images: int) -> dict[str, float]:
    from inference.faces import face_detector_load, faces_detect, image_decode
    from inference.models import Sample
    from inference.services.va import _FaceChannel, _run_model
    from inference.va.facechannel import facechannel_load, facechannel_predict, preprocess

    names = [FACE_FILES[i % len(FACE_FILES)] for i in range(images)]
    # Unsaved Sample rows (no database needed): the service only reads pk, image and body_box here.
    samples = [Sample(pk=i + 1, image=f"faces/{name}", body_box=None) for i, name in enumerate(names)]
    detector = face_detector_load()
    model = _FaceChannel()
    port = facechannel_load().port

    def naive() -> int:
        for sample in samples:
            with sample.image.open("rb") as handle:
                image = image_decode(handle.read())
            box = faces_detect(image, detector=detector).box
            if box is not None:
                facechannel_predict(port, preprocess(image, box.as_list())[None])
        return len(samples)

    def service() -> int:
        outcomes = _run_model(model, samples, detector)
        assert all(o.status == "ok" for o in outcomes.values()), "a sample face was not processed"
        return len(samples)

    return {"naive": _rate(naive, seconds), "service": _rate(service, seconds)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0, help="Measuring time per variant (default 3).")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads (default: cores).")
    parser.add_argument("--images", type=int, default=32, help="Images per stage chunk (default 32).")
    args = parser.parse_args()
    _setup(args.threads)
    load = os.getloadavg()[0]
    print(f"cores={os.cpu_count()} torch_threads={args.threads} load_avg_1min={load:.2f} (shared machine)")
    model = bench_model(args.seconds)
    print(f"model  naive per-image loop : {model['naive']:8.1f} images/s")
    print(f"model  batch 1, inference    : {model['batch1']:8.1f} images/s  ({model['batch1'] / model['naive']:.2f}x naive)")
    print(f"model  batch 32, eager port  : {model['port32']:8.1f} images/s  ({model['port32'] / model['naive']:.2f}x naive)")
    print(f"model  batch 32, inference   : {model['batch32']:8.1f} images/s  ({model['batch32'] / model['naive']:.2f}x "
          f"naive; target >= 170 images/s)")
    stage = bench_stage(args.seconds, args.images)
    print(f"stage  naive per-image loop  : {stage['naive']:8.1f} images/s")
    print(f"stage  service chunk of {args.images:<4} : {stage['service']:8.1f} images/s  "
          f"({stage['service'] / stage['naive']:.2f}x naive; target >= 3x)")


if __name__ == "__main__":
    main()
