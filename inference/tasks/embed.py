"""Celery tasks (embed). Thin: take ids, call one service, own retry/failure handling."""
from __future__ import annotations
