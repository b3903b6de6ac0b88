"""Cursors for the few hand-written statements on hot paths (the rating submit and the claim of the next item).

Django binds parameters on the client (psycopg's ClientCursor), so PostgreSQL parses and plans every query
anew. For the rating flow's long statements planning costs more than running them (the claim's first
statement: about 2 ms to plan, 0.5 ms to run on 600 items), so these statements use server-side binding,
and psycopg prepares each one on a connection after `prepare_threshold` runs (DB_PREPARE_THRESHOLD, default 0:
at the first; Django's own queries are never prepared). The cursor keeps Django's wrapper: the statements are counted, logged and
seen by execute wrappers like any other query.
"""
from __future__ import annotations

import functools
from typing import Any

from django.db import connection
from django.db.backends.utils import CursorWrapper


@functools.cache
def _preparing_cursor_class() -> type:
    from django.db.backends.postgresql.base import ServerBindingCursor  # imports psycopg: PostgreSQL only

    class PreparingCursor(ServerBindingCursor):
        def _send_query_prepared(self, name: bytes, pgq: Any, *, binary: bool | None = None) -> None:
            # psycopg leaves the cursor's last query unset when it runs a prepared statement; Django's query
            # log (DEBUG, CaptureQueriesContext) reads it from there.
            self._query = pgq
            super()._send_query_prepared(name, pgq, binary=binary)

    return PreparingCursor


def prepared_cursor() -> CursorWrapper:
    """A cursor with server-side binding on PostgreSQL (the default cursor elsewhere)."""
    if connection.vendor != "postgresql":
        return connection.cursor()
    connection.ensure_connection()
    with connection.wrap_database_errors:
        return connection._prepare_cursor(_preparing_cursor_class()(connection.connection))
