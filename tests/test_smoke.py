from __future__ import annotations

import pytest
from django.db import connection


@pytest.mark.django_db
def test_it_runs_on_postgresql() -> None:
    assert connection.vendor == "postgresql"


def test_it_serves_health(client, db) -> None:
    response = client.get("/pipeline/healthz")
    assert response.status_code == 200
    assert response.json() == {"ok": True}
