"""The PostgreSQL statements that SQLAlchemy Core does not write: the outbox INSERT, waking
relays, and the idempotency claim of the group commit, in asyncpg's ``$n`` parameters."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.engine import make_url

from service.config import Settings
from service.events.payload import EventShell, NewEvent
from service.store.backends.rows import insert_rows, settings_document

__all__ = [
    "CLAIM_KEY",
    "INSERT",
    "NOTIFY",
    "NOTIFY_CHANNEL",
    "STORED_ANSWER",
    "asyncpg_dsn",
    "insert_arguments",
]

NOTIFY_CHANNEL = "outbox_events"
NOTIFY = f"SELECT pg_notify('{NOTIFY_CHANNEL}', '')"
# The outbox INSERT: the rows come as one array per column, in order; a shell's data is the
# settings document read by the same statement; an id stored already is left out. The answer
# is the ids stored, and the notification wakes listening relays at commit (PostgreSQL sends
# it once per transaction, however many asked).
INSERT = (
    "WITH inserted AS (INSERT INTO outbox_events"
    " (id, name, payload, status, attempts, created_at, next_attempt_at, env, replay_of)"
    " SELECT e.id, e.name,"
    " CASE WHEN e.tail IS NULL THEN e.head ELSE e.head || document.data || e.tail END,"
    " 'pending', 0, e.created_at, e.created_at, e.env, e.replay_of"
    f" FROM {settings_document('app_settings')},"
    " unnest($1::varchar[], $2::varchar[], $3::text[], $4::text[], $5::bigint[],"
    " $6::varchar[], $7::varchar[])"
    " WITH ORDINALITY AS e(id, name, head, tail, created_at, env, replay_of, position)"
    " ORDER BY e.position ON CONFLICT (id) DO NOTHING RETURNING id)"
    " SELECT coalesce((SELECT array_agg(id) FROM inserted), '{}'),"
    f" pg_notify('{NOTIFY_CHANNEL}', '')"
)
# Insert the key, or take over a row whose time is up; RETURNING says whether it is ours.
CLAIM_KEY = (
    "INSERT INTO idempotency_keys (caller, key, event_id, response, created_at, expires_at)"
    " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (caller, key) DO UPDATE"
    " SET event_id = excluded.event_id, response = excluded.response,"
    " created_at = excluded.created_at, expires_at = excluded.expires_at"
    " WHERE idempotency_keys.expires_at <= $5 RETURNING event_id"
)
STORED_ANSWER = "SELECT response FROM idempotency_keys WHERE caller = $1 AND key = $2"


def insert_arguments(shells: Sequence[EventShell], events: Sequence[NewEvent]) -> list[list[Any]]:
    """``INSERT``'s seven arrays: the rows' columns."""
    rows = insert_rows(shells, events)
    return [list(column) for column in zip(*rows, strict=True)] if rows else [[]] * 7


def asyncpg_dsn(settings: Settings) -> str:
    """``DATABASE_URL`` as asyncpg's own connections (group commit, LISTEN) want it."""
    url = make_url(settings.database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)
