"""The PostgreSQL statements that SQLAlchemy Core does not write, for the service's schema:
the outbox INSERT, the move of the apps' events from the intake into the outbox, waking relays,
the group commit's idempotency claim, and what a relay does to wait for work. Every name is
qualified by the schema: a connection's ``search_path`` is never relied on (it does not survive
a pooler in transaction mode).

Waking relays costs a ``NOTIFY``, and PostgreSQL serializes the commits of notifying
transactions, so a writer notifies only while a relay waits. A relay waiting for work holds an
exclusive advisory lock (``WAKE_KEY``) on its listening connection; a writing transaction tries
to take it shared, for the rest of the transaction: when it cannot, a relay waits, and the
writer notifies (delivered at commit). When it can, no relay waits, and none can start waiting
until the writer's transaction has ended, so the relay's last look for work sees its rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from service.events.payload import EventShell, NewEvent
from service.store.backends.rows import INSERT_COLUMNS, insert_rows, settings_document

__all__ = ["PostgresStatements", "insert_arguments", "quoted"]

# The high half of the relays' advisory lock key; the low half is the schema's oid, so that
# the services of two schemas in one database never wait on each other's lock.
WAKE_KEY_HIGH = 0x4F55_5458  # "OUTX"
# The function apps call in their own transactions (made by the migrations); its arguments'
# types name it, one of a kind.
SEND_EVENT_SIGNATURE = "send_event(text, jsonb, jsonb, text, bigint, text)"


def quoted(identifier: str) -> str:
    """``identifier`` as a quoted SQL identifier."""
    return '"' + identifier.replace('"', '""') + '"'


@dataclass(frozen=True)
class PostgresStatements:
    """The statements of the service's tables in one schema."""

    schema: str
    channel: str  # the NOTIFY channel, named after the schema
    wake_key: str  # the advisory lock key of waiting relays, as an SQL expression
    insert: str
    take_in: str
    claim_key: str
    stored_answer: str
    notify: str
    start_waiting: str
    shared_available: str
    stop_waiting: str

    def grant_sender(self, role: str) -> list[str]:
        """``role`` may find the schema and call ``send_event``: no table of it, no row."""
        s = quoted(self.schema)
        return [
            f"GRANT USAGE ON SCHEMA {s} TO {quoted(role)}",
            f"GRANT EXECUTE ON FUNCTION {s}.{SEND_EVENT_SIGNATURE} TO {quoted(role)}",
        ]

    def set_event_max_bytes(self, limit: int) -> str:
        """The statement that sets how large an event ``send_event`` takes."""
        return _set_event_max_bytes(self.schema, limit)

    @classmethod
    def of(cls, schema: str) -> PostgresStatements:
        s = quoted(schema)
        channel = f"{schema}.outbox_events"
        wake_key = (
            f"(({WAKE_KEY_HIGH}::bigint << 32) | {quoted_literal(s)}::regnamespace::oid::bigint)"
        )
        notify_unless_nobody_waits = (
            f"CASE WHEN pg_try_advisory_xact_lock_shared({wake_key}) THEN NULL"
            f" ELSE pg_notify('{channel}', '') END"
        )
        return cls(
            schema=schema,
            channel=channel,
            wake_key=wake_key,
            # The rows come as one array per column, in order; a shell's data is the settings
            # document read by the same statement; an id stored already is left out. The
            # answer is the ids stored; a waiting relay is woken at commit.
            insert=(
                f"WITH inserted AS (INSERT INTO {s}.outbox_events"
                " (id, name, payload, status, attempts, created_at, next_attempt_at, env,"
                " replay_of, inngest_id, traceparent, tracestate)"
                " SELECT e.id, e.name,"
                " CASE WHEN e.tail IS NULL THEN e.head"
                " ELSE e.head || document.data || e.tail END,"
                " 'pending', 0, e.created_at, e.created_at, e.env, e.replay_of, e.inngest_id,"
                " e.traceparent, e.tracestate"
                f" FROM {settings_document(f'{s}.app_settings')},"
                " unnest($1::text[], $2::varchar[], $3::text[], $4::text[], $5::bigint[],"
                " $6::varchar[], $7::text[], $8::text[], $9::text[], $10::text[])"
                " WITH ORDINALITY AS e(id, name, head, tail, created_at, env, replay_of,"
                " inngest_id, traceparent, tracestate, position)"
                " ORDER BY e.position ON CONFLICT (id) DO NOTHING RETURNING id)"
                " SELECT coalesce((SELECT array_agg(id) FROM inserted), '{}'),"
                f" {notify_unless_nobody_waits}"
            ),
            # Up to $1 committed intake rows (none that another relay is moving), deleted and
            # inserted into the outbox in one statement, in the order they were sent; an id
            # stored already is dropped. The answer is how many rows left the intake.
            take_in=(
                f"WITH taken AS (DELETE FROM {s}.outbox_intake WHERE ctid = ANY (ARRAY("
                f"SELECT ctid FROM {s}.outbox_intake LIMIT $1 FOR UPDATE SKIP LOCKED))"
                " RETURNING id, name, payload, env, created_at, inngest_id, ctid AS place),"
                f" stored AS (INSERT INTO {s}.outbox_events"
                " (id, name, payload, status, attempts, created_at, next_attempt_at, env,"
                " inngest_id)"
                " SELECT id, name, payload, 'pending', 0, created_at, created_at, env, inngest_id"
                " FROM taken ORDER BY created_at, place ON CONFLICT (id) DO NOTHING)"
                " SELECT count(*) FROM taken"
            ),
            # Insert the key, or take over a row whose time is up; RETURNING says whether it
            # is ours.
            claim_key=(
                f"INSERT INTO {s}.idempotency_keys"
                " (caller, key, event_id, response, created_at, expires_at)"
                " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (caller, key) DO UPDATE"
                " SET event_id = excluded.event_id, response = excluded.response,"
                " created_at = excluded.created_at, expires_at = excluded.expires_at"
                " WHERE idempotency_keys.expires_at <= $5 RETURNING event_id"
            ),
            stored_answer=(
                f"SELECT response FROM {s}.idempotency_keys WHERE caller = $1 AND key = $2"
            ),
            notify=f"SELECT {notify_unless_nobody_waits}",
            start_waiting=f"SELECT pg_try_advisory_lock({wake_key})",
            # Whether the key can be had shared (then let go at once): while writers are in
            # flight it can, while a relay waits it cannot.
            shared_available=(
                f"SELECT CASE WHEN pg_try_advisory_lock_shared({wake_key})"
                f" THEN pg_advisory_unlock_shared({wake_key}) ELSE false END"
            ),
            stop_waiting=f"SELECT pg_advisory_unlock({wake_key})",
        )


def _set_event_max_bytes(schema: str, limit: int) -> str:
    """Replace ``event_max_bytes()``, where the schema has it (since the migration that made
    ``send_event``), by a function that answers ``limit``."""
    s = quoted(schema)
    create = (
        f"CREATE OR REPLACE FUNCTION {s}.event_max_bytes() RETURNS integer"
        f" LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $limit$ SELECT {int(limit)} $limit$"
    )
    exists = f"to_regprocedure({quoted_literal(s + '.event_max_bytes()')}) IS NOT NULL"
    return f"DO $set$ BEGIN IF {exists} THEN EXECUTE {quoted_literal(create)}; END IF; END $set$"


def quoted_literal(text: str) -> str:
    """``text`` as an SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def insert_arguments(shells: Sequence[EventShell], events: Sequence[NewEvent]) -> list[list[Any]]:
    """The outbox INSERT's arrays, one per column of its rows."""
    rows = insert_rows(shells, events)
    return [list(column) for column in zip(*rows, strict=True)] if rows else [[]] * INSERT_COLUMNS
