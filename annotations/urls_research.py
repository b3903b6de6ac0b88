"""Researcher-facing routes: reports, exports, the token JSON API (owned by the reports work)."""
from __future__ import annotations

app_name = "research"
urlpatterns: list = []
