"""evalplatform/db.py: the rating flow's hand-written statements are prepared once per connection (PostgreSQL)."""
from __future__ import annotations

from django.db import connection
from django.test.utils import CaptureQueriesContext

from evalplatform.db import prepared_cursor

STATEMENT = "SELECT %(n)s::int + 1 AS prepared_probe"


def _prepared_here() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s", ["%prepared_probe%"])
        return cursor.fetchone()[0]


def test_it_prepares_a_statement_after_the_threshold_and_still_logs_it(db) -> None:
    assert connection.vendor == "postgresql"
    threshold = connection.settings_dict["OPTIONS"]["prepare_threshold"]
    with CaptureQueriesContext(connection) as captured:
        answers = []
        for n in range(threshold + 2):
            with prepared_cursor() as cursor:
                cursor.execute(STATEMENT, {"n": n})
                answers.append(cursor.fetchone()[0])
    assert answers == list(range(1, threshold + 3))
    assert _prepared_here() == 1  # planned once on this connection, not on every run
    assert all("prepared_probe" in query["sql"] for query in captured.captured_queries)  # counted and logged


def test_it_never_prepares_djangos_own_queries(db) -> None:
    from annotations.models import Study

    for _ in range(connection.settings_dict["OPTIONS"]["prepare_threshold"] + 2):
        list(Study.objects.filter(slug="prepared_probe"))
    assert _prepared_here() == 0
