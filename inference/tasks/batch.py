"""Celery tasks (batch). Thin: take ids, call one service, own retry/failure handling."""
from __future__ import annotations
