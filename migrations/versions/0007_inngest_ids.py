"""Inngest's own event ids, decided when an event is written, and the caller's trace context.

Every row gains ``inngest_id``, the ULID Inngest will file the event under: the relay sends
each request with the seed (``x-inngest-event-id-seed``) from which Inngest's server derives
exactly those ids, so the id an app was answered finds the event and its runs in Inngest. Rows
written before this revision have none (NULL): they are sent as before, and Inngest makes ids
of its own. ``traceparent`` and ``tracestate`` keep the caller's W3C trace context, sent along
as the headers of the request that carries the event.

On PostgreSQL, ``send_event`` gives each event the next position of the database's run of the
current second: ``inngest_id(ms, run_position)`` is the ULID of that second and an entropy of six
bytes drawn once per schema (here, at the upgrade) and the position's low 32 bits. Events of one
second written by any transactions then make one run, which the relay sends in as few requests
as the batch limits allow, however many transactions wrote them. Without an ``id`` of its own,
the event's ``id`` is that ULID too, and what ``send_event`` returns (an id of the app's own is
returned as before). Its signature, grants, rules and texts are those of revision 0006.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

import os
from typing import Any

import sqlalchemy as sa
from alembic import op
from alembic.script import ScriptDirectory

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
RUN_SECONDS_MS = 1000  # how long one run of send_event's ids lasts


def revision_0006() -> Any:
    """The module of revision 0006, whose ``send_event`` this one changes."""
    return ScriptDirectory.from_config(op.get_context().config).get_revision("0006").module


def base32_digits(expression: str, shifts: range) -> list[str]:
    """SQL for the Crockford base32 digits of the bigint ``expression``: one per shift, of the
    five bits at that shift."""
    return [
        f"substr('{CROCKFORD}', ((({expression}) >> {shift}) & 31)::integer + 1, 1)"
        for shift in shifts
    ]


def inngest_id_function(schema: str, head: int) -> str:
    """``inngest_id(ms, run_position)``: the ULID of ``ms`` and the 80-bit entropy ``head`` (48
    bits) followed by the position's low 32 bits, spelled as ``events.inngest_ids.ulid``
    spells it. Of its 26 characters, 10 are the time's, 9 the head's alone (constants here),
    one the head's last 3 bits with the position's top 2, and 6 the position's other 30."""
    s = _quoted(schema)
    head_digits = "".join(CROCKFORD[(head >> shift) & 31] for shift in range(43, 2, -5))
    tail = "(run_position & 4294967295)"
    digits = [
        *base32_digits("ms", range(45, -1, -5)),
        f"'{head_digits}'",
        *base32_digits(f"{(head & 7) << 2} | ({tail} >> 30)", range(0, -1, -1)),
        *base32_digits(tail, range(25, -1, -5)),
    ]
    return (
        f"CREATE OR REPLACE FUNCTION {s}.inngest_id(ms bigint, run_position bigint) RETURNS text"
        " LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $ulid$ SELECT " + " || ".join(digits) + " $ulid$"
    )


def _quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# What this revision changes in revision 0006's function: each old text and its new one.
CHANGES = (
    ("    event_id text;\n", "    event_id text;\n    inngest_id text;\n"),
    (
        "    event_id := coalesce(nullif(send_event.id, ''), encode(set_bit(set_bit(overlay(\n"
        "        uuid_send(gen_random_uuid()) PLACING substring(int8send(now_ms) FROM 3)"
        " FROM 1 FOR 6),\n        52, 1), 53, 1), 'hex')::uuid::text);\n",
        "    -- The id Inngest will give it: the next position of this second's run.\n"
        "    inngest_id := {s}.inngest_id(now_ms - now_ms % {run},"
        " nextval({sequence}));\n"
        "    event_id := coalesce(nullif(send_event.id, ''), inngest_id);\n",
    ),
    (
        "    INSERT INTO {s}.outbox_intake (id, name, payload, env, created_at)\n"
        "    VALUES (event_id, send_event.name, payload, send_event.env, now_ms);\n",
        "    INSERT INTO {s}.outbox_intake (id, name, payload, env, created_at, inngest_id)\n"
        "    VALUES (event_id, send_event.name, payload, send_event.env, now_ms, inngest_id);\n",
    ),
)


def send_event(schema: str) -> str:
    """Revision 0006's ``send_event`` with this revision's ids (``CREATE OR REPLACE``: its
    grants stay)."""
    function = revision_0006().send_event(schema)
    s = _quoted(schema)
    sequence = _literal(f"{s}.outbox_run_position")
    for old, new in CHANGES:
        old = old.replace("{s}", s)
        if old not in function:
            raise RuntimeError(f"revision 0006's send_event has no {old.strip()!r}")
        new = new.replace("{s}", s).replace("{run}", str(RUN_SECONDS_MS))
        function = function.replace(old, new.replace("{sequence}", sequence))
    return function


def upgrade() -> None:
    with op.batch_alter_table("outbox_events") as batch:
        batch.add_column(sa.Column("inngest_id", sa.Text(), nullable=True))
        batch.add_column(sa.Column("traceparent", sa.Text(), nullable=True))
        batch.add_column(sa.Column("tracestate", sa.Text(), nullable=True))
    schema = op.get_context().version_table_schema
    if schema is None:
        return  # SQLite: apps write the outbox itself
    op.add_column("outbox_intake", sa.Column("inngest_id", sa.Text(), nullable=True))
    s = _quoted(schema)
    op.execute(f"CREATE SEQUENCE {s}.outbox_run_position AS bigint")
    op.execute(inngest_id_function(schema, int.from_bytes(os.urandom(6), "big")))
    op.execute(f"REVOKE EXECUTE ON FUNCTION {s}.inngest_id(bigint, bigint) FROM PUBLIC")
    op.execute(send_event(schema))


def downgrade() -> None:
    schema = op.get_context().version_table_schema
    if schema is not None:
        s = _quoted(schema)
        op.execute(revision_0006().send_event(schema))
        op.execute(f"DROP FUNCTION {s}.inngest_id(bigint, bigint)")
        op.execute(f"DROP SEQUENCE {s}.outbox_run_position")
        op.drop_column("outbox_intake", "inngest_id")
    with op.batch_alter_table("outbox_events") as batch:
        batch.drop_column("tracestate")
        batch.drop_column("traceparent")
        batch.drop_column("inngest_id")
