"""What the SQLite backend's two sides share, without SQLAlchemy: its named statements
(``sqlite.sql``), the INSERT's argument, and how a connection is set up.

The SQLite writer process runs these with the standard library's ``sqlite3`` alone; the web
process's SQLAlchemy connections run the same statements (``SqliteBackend``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from service.events.payload import EventShell, NewEvent
from service.store.backends.named_sql import named_statements
from service.store.backends.rows import ROW_FIELDS, as_json, insert_rows, row_sql_fields

__all__ = ["SQL", "apply_pragmas", "file_identity", "insert_argument"]


def _filled(statement: str) -> str:
    fields = row_sql_fields() | {
        # The row's fields as items of its JSON array, named.
        "row_items": ", ".join(
            f"json_extract(value, '$[{place}]') AS {name}" for place, name in enumerate(ROW_FIELDS)
        )
    }
    for name, value in fields.items():
        statement = statement.replace("{" + name + "}", value)
    return statement


SQL = {name: _filled(statement) for name, statement in named_statements("sqlite").items()}


def insert_argument(shells: Sequence[EventShell], events: Sequence[NewEvent]) -> dict[str, str]:
    """``insert_events``'s parameters: its rows as one JSON array."""
    return {"rows": as_json(insert_rows(shells, events))}


def apply_pragmas(cursor: Any, busy_timeout_ms: int, synchronous: str) -> None:
    """Set up a new SQLite connection (a DB-API cursor of it): waits, WAL, durability, keys."""
    cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
    # WAL is a property of the file, set by the first connection. Asking to switch a file that
    # already is in WAL can fail at once with "database is locked" while another connection
    # opens it, without waiting for busy_timeout: ask only when the file is not in WAL yet.
    cursor.execute("PRAGMA journal_mode")
    if str(cursor.fetchone()[0]).lower() != "wal":
        cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA synchronous={synchronous}")
    cursor.execute("PRAGMA foreign_keys=ON")


def file_identity(path: str) -> tuple[int, int] | None:
    """A file's (device, inode), or None when it does not exist."""
    try:
        status = os.stat(path)
    except FileNotFoundError:
        return None
    return status.st_dev, status.st_ino
