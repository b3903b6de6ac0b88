from __future__ import annotations

import os

from django.apps import AppConfig


class InferenceConfig(AppConfig):
    name = "inference"
    verbose_name = "Inference (datasets, VA, LLM outputs, similarity, batches)"

    def ready(self) -> None:
        # torch's OpenMP threads busy-wait between parallel regions by default. On a host where the web
        # process, the workers and the LLM share a few cores, spinning threads starve each other: on the
        # 2-core machine under load, FaceChannel at batch 32 ran 2-4x faster with passive waiting
        # (benchmarks/va_throughput.py). libgomp reads this when torch is first imported, which happens
        # lazily, after this; an explicit OMP_WAIT_POLICY in the environment wins.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        # Register the app's Celery tasks in every process that sets Django up (web, commands, tests),
        # not only in workers (autodiscovery): the batch service sends chunks by the task's registered name.
        from inference import tasks  # noqa: F401
