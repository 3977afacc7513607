"""``send_event`` writes to an intake table; relays move its rows into the outbox.

An app pays for its event inside its own transaction, so that row is kept as cheap as a row can
be: ``outbox_intake`` has no index, no key and no constraint but NOT NULL, and nobody but the
relays ever reads it. A relay takes the committed rows in (one statement: deleted from the
intake, inserted into the outbox as pending, due at once) before each claim; a repeated id is
dropped there, as the outbox's unique id drops it anywhere else. A row of the outbox costs the
app's transaction its six indexes, the unique check and the claim's bookkeeping columns; an
intake row is about the price of the app's own.

PostgreSQL only: apps on SQLite write the outbox through the Python helper, one writer at a
time, with nothing to gain from an intake.

``send_event`` keeps its signature, its grants, its rules and its texts. Its body is rewritten
for the same reason: PostgreSQL prepares each expression of a PL/pgSQL function again in every
transaction, so an event that breaks no rule now costs one test of all the rules (which rule it
breaks is worked out only when it breaks one), and the id, the payload and the row are made in
a few expressions. Downgrading restores revision 0005's function and moves what the intake
holds into the outbox.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from alembic.script import ScriptDirectory

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


# What the Event API calls a JSON value of each type, in its texts.
A_KIND = (
    """'{"array": "an array", "string": "a string", "number": "a number","""
    """ "boolean": "a boolean"}'"""
)


def send_event(schema: str) -> str:
    """``send_event`` in ``schema``, writing to the intake (``CREATE OR REPLACE``: the grants
    of revision 0005's function stay)."""
    previous = revision_0005()
    s = previous.quoted(schema)
    schema_literal = "'" + s.replace("'", "''") + "'"
    wake_key = (
        f"(({previous.WAKE_KEY_HIGH}::bigint << 32) | {schema_literal}::regnamespace::oid::bigint)"
    )
    channel = f"{schema}.outbox_events"
    return f"""
CREATE OR REPLACE FUNCTION {s}.send_event(
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
    now_ms bigint;
    event_data jsonb;
    event_id text;
    payload text;
BEGIN
    now_ms := floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint;
    event_data := coalesce(nullif(send_event.data, 'null'), '{{}}');
    IF send_event.name IS NULL OR NOT (send_event.name <> ''
            AND lower(send_event.name) NOT LIKE 'inngest/%'
            AND char_length(send_event.name) <= 256
            AND jsonb_typeof(event_data) = 'object'
            AND coalesce(jsonb_typeof(nullif(send_event.event_user, 'null')), 'object') = 'object'
            AND coalesce(nullif(send_event.ts, 0), now_ms) BETWEEN 315532800000 AND 4102444800000
            AND (send_event.env IS NULL OR (char_length(send_event.env) BETWEEN 1 AND 256
                AND send_event.env !~ '[^ -~]'))) THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = CASE
            WHEN send_event.name IS NULL OR send_event.name = '' THEN 'event name is empty'
            WHEN lower(send_event.name) LIKE 'inngest/%'
                THEN 'event name is reserved for internal use: ' || send_event.name
            WHEN char_length(send_event.name) > 256
                THEN 'event name is longer than 256 characters'
            WHEN jsonb_typeof(event_data) <> 'object'
                THEN 'data must be an object, not '
                    || ({A_KIND}::jsonb ->> jsonb_typeof(event_data))
            WHEN jsonb_typeof(send_event.event_user) NOT IN ('object', 'null')
                THEN 'user must be an object, not '
                    || ({A_KIND}::jsonb ->> jsonb_typeof(send_event.event_user))
            WHEN coalesce(nullif(send_event.ts, 0), now_ms) < 315532800000
                THEN 'timestamp is before Jan 1, 1980'
            WHEN coalesce(nullif(send_event.ts, 0), now_ms) > 4102444800000
                THEN 'timestamp is after Jan 1, 2100'
            ELSE 'env must be 1 to 256 printable ASCII characters' END;
    END IF;
    -- Without an id, a time-ordered (version 7) UUID: 48 bits of milliseconds over a random one.
    event_id := coalesce(nullif(send_event.id, ''), encode(set_bit(set_bit(overlay(
        uuid_send(gen_random_uuid()) PLACING substring(int8send(now_ms) FROM 3) FROM 1 FOR 6),
        52, 1), 53, 1), 'hex')::uuid::text);
    -- As the Event API stores {{name, data, user, id, ts}}: in that order, user only if given.
    payload := CASE WHEN nullif(send_event.event_user, 'null') IS NULL
        THEN json_build_object('name', send_event.name, 'data', event_data, 'id', event_id,
            'ts', coalesce(nullif(send_event.ts, 0), now_ms))
        ELSE json_build_object('name', send_event.name, 'data', event_data,
            'user', send_event.event_user, 'id', event_id,
            'ts', coalesce(nullif(send_event.ts, 0), now_ms)) END::text;
    IF octet_length(payload) > {s}.event_max_bytes() THEN
        RAISE EXCEPTION 'Event is over the max size: Max % bytes / Size % bytes',
            {s}.event_max_bytes(), octet_length(payload) USING ERRCODE = '22023';
    END IF;
    -- A repeated id is dropped when a relay moves the row into the outbox.
    INSERT INTO {s}.outbox_intake (id, name, payload, env, created_at)
    VALUES (event_id, send_event.name, payload, send_event.env, now_ms);
    -- Wake a relay only if one waits: notifying transactions commit one at a time.
    IF NOT pg_try_advisory_xact_lock_shared({wake_key}) THEN
        PERFORM pg_notify('{channel}', '');
    END IF;
    RETURN event_id;
END
$function$
"""


# Rows moved back into the outbox when downgrading, oldest first, repeats dropped.
MOVE_BACK = """INSERT INTO {s}.outbox_events
    (id, name, payload, status, attempts, created_at, next_attempt_at, env)
SELECT id, name, payload, 'pending', 0, created_at, created_at, env
FROM {s}.outbox_intake ORDER BY created_at, ctid
ON CONFLICT ON CONSTRAINT uq_outbox_events_id DO NOTHING"""


def revision_0005() -> Any:
    """The module of revision 0005, which made ``send_event``."""
    return ScriptDirectory.from_config(op.get_context().config).get_revision("0005").module


def send_event_of_0005(schema: str) -> str:
    """Revision 0005's ``send_event`` in ``schema``, as ``CREATE OR REPLACE`` (which keeps the
    function's grants)."""
    made = revision_0005().send_event(schema)
    return made.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)


def upgrade() -> None:
    schema = op.get_context().version_table_schema
    if schema is None:
        return  # SQLite: apps write the outbox itself
    op.create_table(
        "outbox_intake",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("env", sa.String(256), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
    )
    # Every row is deleted soon after it is written: vacuum after a thousand, not after a
    # fifth of the table, so the relays' scans of it stay short. Without a key, a logical
    # replication that publishes every table needs the whole row to replicate the deletes.
    op.execute(
        "ALTER TABLE outbox_intake SET (autovacuum_vacuum_scale_factor = 0,"
        " autovacuum_vacuum_threshold = 1000, autovacuum_vacuum_insert_scale_factor = 0,"
        " autovacuum_vacuum_insert_threshold = 1000)"
    )
    op.execute("ALTER TABLE outbox_intake REPLICA IDENTITY FULL")
    op.execute(send_event(schema))


def downgrade() -> None:
    schema = op.get_context().version_table_schema
    if schema is None:
        return
    op.execute(send_event_of_0005(schema))
    op.execute(MOVE_BACK.format(s=revision_0005().quoted(schema)))
    op.drop_table("outbox_intake")
