from __future__ import annotations

# Celery is wired in the project package and re-exported so `celery -A evalplatform` and
# `@shared_task` both find the app (cookiecutter-django / Celery's Django example).
from .celery import app as celery_app

__all__ = ("celery_app",)
