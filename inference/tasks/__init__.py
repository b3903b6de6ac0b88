"""Celery tasks of the inference app, one module per queue; autodiscovery imports this package."""
from __future__ import annotations

from . import batch, embed, imports, llm, va  # noqa: F401
