from __future__ import annotations

from django.apps import AppConfig


class InferenceConfig(AppConfig):
    name = "inference"
    verbose_name = "Inference (datasets, VA, LLM outputs, similarity, batches)"

    def ready(self) -> None:
        # Register the app's Celery tasks in every process that sets Django up (web, commands, tests),
        # not only in workers (autodiscovery): the batch service sends chunks by the task's registered name.
        from inference import tasks  # noqa: F401
