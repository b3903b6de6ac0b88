"""Celery tasks of the inference app, one module per area; autodiscovery imports this package."""
from __future__ import annotations

from . import batch, imports  # noqa: F401
