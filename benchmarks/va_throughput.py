"""VA stage throughput, against a naive per-image loop and against the authors' Keras model, in one run.

    python benchmarks/va_throughput.py [--seconds 3] [--threads 2] [--images 32] [--no-peers]

1. Model (synthetic-weights fixture: same architecture and cost as the real DimensionalFaceChannel.h5,
   which cannot be downloaded here), images/s: a naive loop (eager port, one image per forward,
   autograd on), batch 1, the eager port at batch 32, the previous TorchScript/oneDNN model at batch 32,
   the fp32 inference model (what facechannel_optimize returns: Winograd convolutions under the default
   FACECHANNEL_FP32_KERNEL=auto, inference/va/winograd.py) and the ONNX Runtime fp32 model (the previous
   one) at batch 32, the opt-in int8 model at batch 32 (calibrated on the sample faces), and the max |dVA| of int8 against fp32 on
   the fixture and on the sample faces. Then the same network in Keras on TensorFlow 2.15
   (benchmarks/peers/keras_facechannel.py in its own venv; its outputs are checked against the
   fixture first): predict() and tf.function at batch 1 and 32. Our fp32 models are timed before and
   after the peer, and the means are compared with it. Both are also put as GFLOP/s (the network's 1.25
   GFLOP per face, counted from its layers) against this CPU's float32 matrix-product rate in the same
   run (also the mean of before and after the peer; only meaningful on an idle machine): a model near that rate can only get faster by doing fewer operations.
2. Stage: decode + detect (YuNet) + crop/preprocess + model on the sample faces. Naive: per image,
   decode it whole, resize to <= 640 px (INTER_AREA), detect with OpenCV's FaceDetectorYN (the stage's
   detector until it moved to ONNX Runtime, and what a plain implementation calls), crop the largest
   face from the full image and run the eager port on it; the same loop with
   our ONNX Runtime detector is printed too. Service: the VA chunk service as it runs
   (inference/va/pipeline.py: threads, reduced JPEG decode, batched model), the same pipeline on a
   process pool (the alternative measured), and the service with FACE_MIN_SIZE=80 (opt-in: a dataset
   whose faces are all >= 80 px may detect on fewer pixels).
Both sides of each ratio are measured in the same run, so machine load affects them alike (other
engineers share this CPU; say so when quoting figures). Peers are skipped, with the reason, when their
venv is missing: create it with `benchmarks/peers/setup.sh tf`.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
# As the inference app sets it for the workers (inference/apps.py); here torch is imported before Django.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ASSETS = Path(os.environ.get("ASSETS_DIR", REPO.parent / "shared" / "assets"))
FIXTURE = ASSETS / "facechannel" / "synthetic-test-fixture"
SYNTHETIC = FIXTURE / "facechannel_dim_SYNTHETIC_random_weights.h5"
TF_PYTHON = REPO / "benchmarks" / "peers" / ".venvs" / "tf215" / "bin" / "python"
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


def model_flops(port) -> float:  # noqa: ANN001
    """Floating-point operations of one forward pass per 64x64 face (2 per multiply-add; convolutions and
    dense layers, which are all but a fraction of a percent of the work), counted from the layers' shapes."""
    import torch

    total = [0.0]

    def count(layer, _inputs, output) -> None:  # noqa: ANN001
        if isinstance(layer, torch.nn.Conv2d):
            per_output = layer.in_channels // layer.groups * layer.kernel_size[0] * layer.kernel_size[1]
            total[0] += 2.0 * output.numel() * per_output
        elif isinstance(layer, torch.nn.Linear):
            total[0] += 2.0 * output.numel() * layer.in_features

    hooks = [m.register_forward_hook(count) for m in port.modules() if isinstance(m, torch.nn.Conv2d | torch.nn.Linear)]
    try:
        with torch.inference_mode():
            port(torch.zeros(1, 1, 64, 64))
    finally:
        for hook in hooks:
            hook.remove()
    return total[0]


def gemm_rate(seconds: float, threads: int) -> tuple[float, str]:
    """GFLOP/s of a 2048^3 float32 matrix product on `threads` threads, the faster of ONNX Runtime's MatMul
    (MLAS) and torch.mm (MKL, which takes a slower path on AMD CPUs), and which it was: what this CPU's FMA
    units deliver on dense work, the yardstick for how close a model is to the machine's limit."""
    import numpy as np
    import torch
    from onnx import TensorProto, helper

    from inference.runtime import ort_session

    n = 2048
    a, b = np.random.default_rng(0).standard_normal((2, n, n), dtype=np.float32)
    spec = [helper.make_tensor_value_info(name, TensorProto.FLOAT, [n, n]) for name in "abc"]
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "gemm", spec[:2], spec[2:])
    session = ort_session(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString(),
                          threads=threads, what="MatMul")
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    rates = {"ONNX Runtime MatMul": _rate(lambda: (session.run(None, {"a": a, "b": b}), 1)[1], seconds),
             "torch.mm": _rate(lambda: (torch.mm(ta, tb), 1)[1], seconds)}
    best = max(rates, key=rates.get)
    return 2 * n ** 3 * rates[best] / 1e9, best


def bench_model(seconds: float, threads: int) -> dict[str, float]:
    import numpy as np
    import torch

    from inference.va.facechannel import OnnxFaceChannel, facechannel_load, facechannel_torchscript
    from inference.va.quantize import calibration_faces, max_deviation

    loaded = facechannel_load(precision="fp32")
    int8 = facechannel_load(precision="int8")  # calibrated on the sample faces (the default set)
    model, port = loaded.model, loaded.port  # optimised inference model / eager port as `load` built it
    torchscript = facechannel_torchscript(port)
    ort = model if isinstance(model, OnnxFaceChannel) else OnnxFaceChannel.from_port(port, threads=threads)
    faces = np.load(FIXTURE / "inputs_9x1x64x64_float32.npy")
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

    def batched(run: torch.nn.Module) -> Callable[[], int]:
        def go() -> int:
            with torch.inference_mode():
                run(batch32)
            return len(batch32)
        return go

    sample_faces, _ = calibration_faces()
    return {"naive": _rate(naive, seconds), "batch1": _rate(batch1, seconds),
            "port32": _rate(port_batched, seconds), "torchscript32": _rate(batched(torchscript), seconds),
            "batch32": _rate(batched(model), seconds), "ort32": _rate(batched(ort), seconds),
            "kernel": getattr(model, "runtime", type(model).__name__),
            "int8_32": _rate(batched(int8.model), seconds),
            "flops": model_flops(port), "gemm": gemm_rate(seconds, threads),
            "gemm_again": lambda: gemm_rate(seconds, threads),
            "int8_dev_fixture": max_deviation(port, int8.model, faces),
            "int8_dev_samples": max_deviation(port, int8.model, sample_faces),
            "fp32_again": lambda: _rate(batched(model), seconds), "ort_again": lambda: _rate(batched(ort), seconds),
            "int8_again": lambda: _rate(batched(int8.model), seconds)}


def bench_keras(seconds: float, threads: int) -> dict | str:
    """The Keras peer's figures, or why it was skipped."""
    if not TF_PYTHON.is_file():
        return f"skipped: no TensorFlow 2.15 venv at {TF_PYTHON.parent.parent} (run benchmarks/peers/setup.sh tf)"
    command = [str(TF_PYTHON), str(REPO / "benchmarks" / "peers" / "keras_facechannel.py"), "--weights", str(SYNTHETIC),
               "--inputs", str(FIXTURE / "inputs_9x1x64x64_float32.npy"),
               "--expected", str(FIXTURE / "keras2.15_outputs_arousal_valence_9x2.npy"),
               "--seconds", str(seconds), "--threads", str(threads)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        return f"skipped: the Keras peer failed ({done.stderr.strip().splitlines()[-1:] or done.returncode})"
    result = json.loads(lines[-1])
    if "error" in result:
        return f"skipped: {result['error']} (max |diff| {result['check_max_abs_diff']:.2e})"
    return result


class OpenCVYuNet:
    """The naive loop's detector: YuNet through cv2.FaceDetectorYN (the stage's detector before it moved to
    ONNX Runtime; tests/inference/test_faces_runtime.py shows both find the same boxes)."""

    def __init__(self, path: str) -> None:
        import cv2

        from inference import faces

        self._faces = faces
        self._detector = cv2.FaceDetectorYN.create(path, "", (320, 320), faces.YUNET_SCORE_THRESHOLD,
                                                   faces.YUNET_NMS_THRESHOLD, faces.YUNET_TOP_K)

    def detect(self, image):  # noqa: ANN001, ANN201
        self._detector.setInputSize((image.shape[1], image.shape[0]))
        _, found = self._detector.detect(image)
        return [self._faces.FaceBox(*(float(v) for v in f[:4]), float(f[-1])) for f in ([] if found is None else found)]


def bench_stage(seconds: float, images: int) -> dict[str, float]:
    import cv2
    from django.conf import settings
    from django.test import override_settings

    from inference.faces import clip_box, face_detector_load, image_decode
    from inference.models import Sample
    from inference.services.va import _FaceChannel, _run_model
    from inference.va.facechannel import facechannel_load, facechannel_predict, preprocess
    from inference.va.pipeline import process_prepare, va_pipeline_run, va_process_pool

    names = [FACE_FILES[i % len(FACE_FILES)] for i in range(images)]
    # Unsaved Sample rows (no database needed): the service only reads pk, image and body_box here.
    samples = [Sample(pk=i + 1, image=f"faces/{name}", body_box=None) for i, name in enumerate(names)]
    detector = face_detector_load()
    opencv = OpenCVYuNet(settings.FACE_DETECTOR_MODEL)
    model = _FaceChannel()
    port = facechannel_load().port

    def naive_with(naive_detector) -> Callable[[], int]:  # noqa: ANN001
        def go() -> int:
            for sample in samples:
                with sample.image.open("rb") as handle:
                    image = image_decode(handle.read())  # decoded whole
                height, width = image.shape[:2]
                scale = min(1.0, 640 / max(width, height))  # detected on <= 640 px, resized with INTER_AREA
                small = cv2.resize(image, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
                found = naive_detector.detect(small)
                if found:
                    box = max(found, key=lambda b: b.w * b.h)
                    crop = [round(v / scale) for v in (box.x, box.y, box.w, box.h)]
                    facechannel_predict(port, preprocess(image, clip_box(crop, width, height))[None])
            return len(samples)
        return go

    def service() -> int:
        outcomes = _run_model(model, samples, detector)
        assert all(o.status == "ok" for o in outcomes.values()), "a sample face was not processed"
        return len(samples)

    def min_face_80() -> int:
        with override_settings(FACE_MIN_SIZE=80):
            return service()

    pool = va_process_pool()
    items = []
    for sample in samples:
        with sample.image.open("rb") as handle:
            items.append((handle.read(), None))

    def processes() -> int:
        # Reading the bytes is not timed here (the threads variant reads them in its workers).
        ran = va_pipeline_run(items, prepare=process_prepare(preprocess), face=lambda p: p.face,
                              predict=model.predict, executor=pool)
        assert all(out is not None for _, out in ran), "a sample face was not processed"
        return len(items)

    try:
        return {"naive": _rate(naive_with(opencv), seconds), "naive_ort": _rate(naive_with(detector), seconds),
                "service": _rate(service, seconds),
                "processes": _rate(processes, seconds), "min_face_80": _rate(min_face_80, seconds)}
    finally:
        pool.shutdown()


def _goal(met: bool) -> str:
    return "MET" if met else "NOT met"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0, help="Measuring time per variant (default 3).")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads (default: cores).")
    parser.add_argument("--images", type=int, default=32, help="Images per stage chunk (default 32).")
    parser.add_argument("--no-peers", action="store_true", help="Skip the Keras/TensorFlow peer.")
    parser.add_argument("--no-stage", action="store_true", help="Only the model figures.")
    args = parser.parse_args()
    _setup(args.threads)
    print(f"cores={os.cpu_count()} torch_threads={args.threads} load_avg_1min={os.getloadavg()[0]:.2f} "
          "(shared machine: compare ratios, not absolute figures)")
    model = bench_model(args.seconds, args.threads)
    keras = "skipped: --no-peers" if args.no_peers else bench_keras(args.seconds, args.threads)
    fp32 = (model["batch32"] + model.pop("fp32_again")()) / 2  # before and after the peer ran
    ort = (model["ort32"] + model.pop("ort_again")()) / 2
    int8 = (model["int8_32"] + model.pop("int8_again")()) / 2
    gemm_again = model.pop("gemm_again")()
    model["gemm"] = ((model["gemm"][0] + gemm_again[0]) / 2, model["gemm"][1])  # the yardstick, timed alike
    print(f"model  naive per-image loop : {model['naive']:8.1f} images/s")
    print(f"model  batch 1, inference    : {model['batch1']:8.1f} images/s  ({model['batch1'] / model['naive']:.2f}x naive)")
    print(f"model  batch 32, eager port  : {model['port32']:8.1f} images/s  ({model['port32'] / model['naive']:.2f}x naive)")
    print(f"model  batch 32, TorchScript : {model['torchscript32']:8.1f} images/s  (the previous fp32 model)")
    print(f"model  batch 32, fp32        : {fp32:8.1f} images/s  ({fp32 / model['naive']:.2f}x naive, "
          f"{fp32 / model['torchscript32']:.2f}x TorchScript, {fp32 / ort:.2f}x ONNX Runtime; {model['kernel']}; "
          "mean of before and after the peer)")
    print(f"model  batch 32, fp32 ONNX RT: {ort:8.1f} images/s  (the previous fp32 model; FACECHANNEL_FP32_KERNEL=onnx)")
    print(f"model  batch 32, int8        : {int8:8.1f} images/s  ({int8 / ort:.2f}x fp32 on ONNX Runtime; goal >= 1.6x: "
          f"{_goal(int8 / ort >= 1.6)}; {int8 / fp32:.2f}x the fp32 model)")
    worst = max(model["int8_dev_fixture"], model["int8_dev_samples"])
    print(f"model  int8 max |dVA| vs fp32: fixture {model['int8_dev_fixture']:.4f}, sample faces "
          f"{model['int8_dev_samples']:.4f} (goal <= 0.02: {_goal(worst <= 0.02)})")
    if isinstance(keras, str):
        print(f"keras  {keras}")
    else:
        print(f"keras  TensorFlow {keras['tensorflow']}, outputs checked against the fixture (max |diff| "
              f"{keras['check_max_abs_diff']:.1e})")
        print(f"keras  predict() batch 1 / 32    : {keras['predict_b1']:6.1f} / {keras['predict_b32']:6.1f} images/s")
        print(f"keras  tf.function batch 1 / 32  : {keras['function_b1']:6.1f} / {keras['function_b32']:6.1f} images/s")
        ratio = fp32 / keras["function_b32"]
        gflop, (gemm, which) = model["flops"] / 1e9, model["gemm"]
        print(f"       {gflop:.2f} GFLOP per face (direct convolution); this CPU's float32 matrix product (2048^3, "
              f"{which}) {gemm:.0f} GFLOP/s: fp32 runs at {fp32 * gflop:.0f} GFLOP/s = {100 * fp32 * gflop / gemm:.0f} % "
              f"(Winograd does fewer operations, so it can exceed 100 %), ONNX Runtime at {ort * gflop:.0f} = "
              f"{100 * ort * gflop / gemm:.0f} %, tf.function at {keras['function_b32'] * gflop:.0f} = "
              f"{100 * keras['function_b32'] * gflop / gemm:.0f} % of it")
        print(f"ours vs keras, batch 32: fp32 {fp32:.1f} vs tf.function {keras['function_b32']:.1f} = {ratio:.2f}x "
              f"(goal >= 1.3x: {_goal(ratio >= 1.3)}; {model['kernel']}); fp32 on ONNX Runtime "
              f"{ort / keras['function_b32']:.2f}x; int8 {int8 / keras['function_b32']:.2f}x")
    if args.no_stage:
        return
    stage = bench_stage(args.seconds, args.images)
    print(f"stage  naive per-image loop  : {stage['naive']:8.1f} images/s  (OpenCV's FaceDetectorYN)")
    print(f"stage  same, our detector    : {stage['naive_ort']:8.1f} images/s  (YuNet on ONNX Runtime; "
          f"{stage['naive_ort'] / stage['naive']:.2f}x)")
    ratio = stage["service"] / stage["naive"]
    print(f"stage  service chunk of {args.images:<4} : {stage['service']:8.1f} images/s  ({ratio:.2f}x naive; "
          f"goal >= 2.5x: {_goal(ratio >= 2.5)})")
    print(f"stage  same, process pool    : {stage['processes']:8.1f} images/s  "
          f"({stage['processes'] / stage['naive']:.2f}x naive)")
    print(f"stage  FACE_MIN_SIZE=80      : {stage['min_face_80']:8.1f} images/s  "
          f"({stage['min_face_80'] / stage['naive']:.2f}x naive; opt-in, faces < 80 px not searched for)")
    print(f"load_avg_1min at the end={os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
