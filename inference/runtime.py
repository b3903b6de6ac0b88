"""ONNX Runtime sessions for the VA stage's CPU models (the YuNet face detector, FaceChannel fp32).

Measured on the 2-core CPU (benchmarks/va_throughput.py), ONNX Runtime's MLAS kernels run YuNet about 2x
faster than OpenCV's dnn module and FaceChannel at batch 32 faster than TorchScript/oneDNN, with the same
outputs (the tests compare both against the reference path). One rule for the threads: a model run by
the calling thread between other work (YuNet, inside the stage's preparation pool) gets one intra-op
thread; the batched model gets one per core. Idle pool threads never spin: the stage's decode/detect
threads need those cores.
"""
from __future__ import annotations

import os
from typing import Any

from django.core.exceptions import ImproperlyConfigured

INSTALL_HINT = "onnxruntime is a requirement (requirements.txt); run scripts/setup.sh to install it"


def ort_module() -> Any:
    """The onnxruntime module, or ImproperlyConfigured saying how to install it."""
    try:
        import onnxruntime
    except ImportError as exc:  # pragma: no cover - a broken environment
        raise ImproperlyConfigured(f"onnxruntime cannot be imported ({exc}): {INSTALL_HINT}") from exc
    return onnxruntime


def ort_version() -> str:
    return str(ort_module().__version__)


def ort_session(model: bytes | str, *, threads: int | None = None, what: str = "model") -> Any:
    """An InferenceSession on the CPU for an ONNX file path or serialized bytes.

    `threads`: intra-op threads (None: one per core). ValueError naming `what` when ONNX Runtime cannot
    load it (not an ONNX model, an unsupported operator)."""
    ort = ort_module()
    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, threads or os.cpu_count() or 1)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only: the graph optimizer's notes are not the user's business
    try:
        return ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
        source = model if isinstance(model, str) else "the exported graph"
        raise ValueError(f"{what}: ONNX Runtime cannot load {source}: {exc}") from exc
