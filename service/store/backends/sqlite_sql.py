"""What the SQLite backend's two sides share, without SQLAlchemy: the statements that
SQLAlchemy Core does not write (the outbox INSERT, the idempotency claim), in sqlite3's ``?``
parameters, and how a connection is set up.

The SQLite writer process runs these with the standard library's ``sqlite3`` alone; the web
process's SQLAlchemy connections run the same INSERT (``SqliteBackend.insert``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from service.events.payload import EventShell, NewEvent, dumps
from service.store.backends.rows import insert_rows, settings_document

__all__ = [
    "CLAIM_KEY",
    "INSERT",
    "STORED_ANSWER",
    "apply_pragmas",
    "file_identity",
    "insert_argument",
]

# The outbox INSERT: the rows come as one JSON array of [id, name, head, tail, created_at, env,
# replay_of, inngest_id, traceparent, tracestate] rows (``rows.insert_rows``), a single
# parameter; a shell's data is the settings document read by the same statement; an id stored
# already is left out; the answer is the ids stored. The WHERE is SQLite's way to tell an
# upsert's ON CONFLICT from a join's ON.
INSERT = (
    "INSERT INTO outbox_events"
    " (id, name, payload, status, attempts, created_at, next_attempt_at, env, replay_of,"
    " inngest_id, traceparent, tracestate)"
    " SELECT json_extract(e.value, '$[0]'), json_extract(e.value, '$[1]'),"
    " CASE WHEN json_extract(e.value, '$[3]') IS NULL THEN json_extract(e.value, '$[2]')"
    " ELSE json_extract(e.value, '$[2]') || document.data || json_extract(e.value, '$[3]') END,"
    " 'pending', 0, json_extract(e.value, '$[4]'), json_extract(e.value, '$[4]'),"
    " json_extract(e.value, '$[5]'), json_extract(e.value, '$[6]'),"
    " json_extract(e.value, '$[7]'), json_extract(e.value, '$[8]'),"
    " json_extract(e.value, '$[9]')"
    f" FROM {settings_document('app_settings')}, json_each(?) AS e"
    " WHERE true ORDER BY e.key ON CONFLICT (id) DO NOTHING RETURNING id"
)
# Insert the key, or take over a row whose time is up; RETURNING says whether it is ours.
CLAIM_KEY = (
    "INSERT INTO idempotency_keys (caller, key, event_id, response, created_at, expires_at)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (caller, key) DO UPDATE"
    " SET event_id = excluded.event_id, response = excluded.response,"
    " created_at = excluded.created_at, expires_at = excluded.expires_at"
    " WHERE idempotency_keys.expires_at <= ?5 RETURNING event_id"
)
STORED_ANSWER = "SELECT response FROM idempotency_keys WHERE caller = ? AND key = ?"


def insert_argument(shells: Sequence[EventShell], events: Sequence[NewEvent]) -> str:
    """``INSERT``'s one parameter: its rows as a JSON array."""
    return dumps(insert_rows(shells, events))


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
