"""Events in the app's own transaction: ``send_event``, and ids of any length.

On PostgreSQL the service's schema gains ``send_event(name, data, event_user, id, ts, env)``:
the app calls it inside its own transaction, and the event commits or rolls back with the
app's writes. It inserts one pending row shaped as the Event API stores an event, checks the
event with the Event API's rules and texts (SQLSTATE 22023), leaves a repeated id alone and
returns it, and wakes a waiting relay at commit. It runs as its owner (``SECURITY DEFINER``,
with a fixed ``search_path``), and nobody may call it until granted (``service db
grant-sender``). Its largest event is ``event_max_bytes()``, which ``service db upgrade`` sets
from ``EVENT_MAX_BYTES`` at every run.

The signature is frozen: callers without types (node-postgres, psql) find it by name, so there
is one function of that name, and a later revision may only add parameters at the end, with
defaults, granting again in the same revision.

Event ids are text of any length (an app's own ids), on both databases.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# Where every name below points: the schema the migrations run in (version_table_schema).
SIGNATURE = "send_event(text, jsonb, jsonb, text, bigint, text)"
DEFAULT_EVENT_MAX_BYTES = 256 * 1024
WAKE_KEY_HIGH = 0x4F55_5458  # the relays' advisory lock key, high half ("OUTX")


def quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def event_max_bytes(schema: str, limit: int) -> str:
    """The function that says how large an event ``send_event`` takes (replaced by every
    ``service db upgrade`` with the value of ``EVENT_MAX_BYTES``)."""
    return (
        f"CREATE OR REPLACE FUNCTION {quoted(schema)}.event_max_bytes() RETURNS integer"
        f" LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT {int(limit)} $$"
    )


def send_event(schema: str) -> str:
    s = quoted(schema)
    schema_literal = "'" + s.replace("'", "''") + "'"
    wake_key = f"(({WAKE_KEY_HIGH}::bigint << 32) | {schema_literal}::regnamespace::oid::bigint)"
    channel = f"{schema}.outbox_events"
    return f"""
CREATE FUNCTION {s}.send_event(
    name text,
    data jsonb DEFAULT '{{}}',
    event_user jsonb DEFAULT NULL,
    id text DEFAULT NULL,
    ts bigint DEFAULT NULL,
    env text DEFAULT NULL
) RETURNS text
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    now_ms bigint := floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint;
    event_id text := nullif(send_event.id, '');
    event_ts bigint := coalesce(nullif(send_event.ts, 0), now_ms);
    event_data jsonb := coalesce(nullif(send_event.data, 'null'::jsonb), '{{}}'::jsonb);
    event_by jsonb := nullif(send_event.event_user, 'null'::jsonb);
    payload text;
BEGIN
    IF send_event.name IS NULL OR send_event.name = '' THEN
        RAISE EXCEPTION 'event name is empty' USING ERRCODE = '22023';
    END IF;
    IF lower(send_event.name) LIKE 'inngest/%' THEN
        RAISE EXCEPTION 'event name is reserved for internal use: %', send_event.name
            USING ERRCODE = '22023';
    END IF;
    IF char_length(send_event.name) > 256 THEN
        RAISE EXCEPTION 'event name is longer than 256 characters' USING ERRCODE = '22023';
    END IF;
    IF jsonb_typeof(event_data) <> 'object' THEN
        RAISE EXCEPTION 'data must be an object, not %',
            CASE jsonb_typeof(event_data) WHEN 'array' THEN 'an array' WHEN 'string'
            THEN 'a string' WHEN 'number' THEN 'a number' ELSE 'a boolean' END
            USING ERRCODE = '22023';
    END IF;
    IF event_by IS NOT NULL AND jsonb_typeof(event_by) <> 'object' THEN
        RAISE EXCEPTION 'user must be an object, not %',
            CASE jsonb_typeof(event_by) WHEN 'array' THEN 'an array' WHEN 'string'
            THEN 'a string' WHEN 'number' THEN 'a number' ELSE 'a boolean' END
            USING ERRCODE = '22023';
    END IF;
    IF event_ts < 315532800000 THEN
        RAISE EXCEPTION 'timestamp is before Jan 1, 1980' USING ERRCODE = '22023';
    END IF;
    IF event_ts > 4102444800000 THEN
        RAISE EXCEPTION 'timestamp is after Jan 1, 2100' USING ERRCODE = '22023';
    END IF;
    IF send_event.env IS NOT NULL AND (char_length(send_event.env) NOT BETWEEN 1 AND 256
            OR send_event.env ~ '[^ -~]') THEN
        RAISE EXCEPTION 'env must be 1 to 256 printable ASCII characters' USING ERRCODE = '22023';
    END IF;
    IF event_id IS NULL THEN
        -- A time-ordered (version 7) UUID: 48 bits of milliseconds over a random one.
        event_id := encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid())
            PLACING substring(int8send(now_ms) FROM 3) FROM 1 FOR 6), 52, 1), 53, 1),
            'hex')::uuid::text;
    END IF;
    -- As the Event API stores {{name, data, user, id, ts}}: in that order, user only if given.
    IF event_by IS NULL THEN
        payload := json_build_object('name', send_event.name, 'data', event_data,
            'id', event_id, 'ts', event_ts)::text;
    ELSE
        payload := json_build_object('name', send_event.name, 'data', event_data,
            'user', event_by, 'id', event_id, 'ts', event_ts)::text;
    END IF;
    IF octet_length(payload) > {s}.event_max_bytes() THEN
        RAISE EXCEPTION 'Event is over the max size: Max % bytes / Size % bytes',
            {s}.event_max_bytes(), octet_length(payload) USING ERRCODE = '22023';
    END IF;
    INSERT INTO {s}.outbox_events
        (id, name, payload, status, attempts, created_at, next_attempt_at, env)
    VALUES (event_id, send_event.name, payload, 'pending', 0, now_ms, now_ms, send_event.env)
    ON CONFLICT ON CONSTRAINT uq_outbox_events_id DO NOTHING;
    -- Wake a relay only if one waits: notifying transactions commit one at a time.
    IF NOT pg_try_advisory_xact_lock_shared({wake_key}) THEN
        PERFORM pg_notify('{channel}', '');
    END IF;
    RETURN event_id;
END
$function$
"""


def upgrade() -> None:
    for table, column in (
        ("outbox_events", "id"),
        ("outbox_events", "replay_of"),
        ("idempotency_keys", "event_id"),
    ):
        with op.batch_alter_table(table) as batch:
            batch.alter_column(column, type_=sa.Text(), existing_type=sa.String(36))
    context = op.get_context()
    schema = context.version_table_schema
    if schema is None:
        return  # SQLite: no stored functions (apps use the Python helper)
    settings = context.config.attributes.get("settings") if context.config else None
    limit = settings.event_api.max_event_bytes if settings else DEFAULT_EVENT_MAX_BYTES
    op.execute(event_max_bytes(schema, limit))
    op.execute(send_event(schema))
    op.execute(f"REVOKE EXECUTE ON FUNCTION {quoted(schema)}.{SIGNATURE} FROM PUBLIC")
    op.execute(f"REVOKE EXECUTE ON FUNCTION {quoted(schema)}.event_max_bytes() FROM PUBLIC")


def downgrade() -> None:
    schema = op.get_context().version_table_schema
    if schema is not None:
        op.execute(f"DROP FUNCTION {quoted(schema)}.{SIGNATURE}")
        op.execute(f"DROP FUNCTION {quoted(schema)}.event_max_bytes()")
    for table, column in (
        ("outbox_events", "id"),
        ("outbox_events", "replay_of"),
        ("idempotency_keys", "event_id"),
    ):
        with op.batch_alter_table(table) as batch:
            batch.alter_column(column, type_=sa.String(36), existing_type=sa.Text())
