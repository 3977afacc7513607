"""The operator console: an index for each filter of its event list, and the delivery's state
that every relay shares.

The console lists events newest first, by ``(created_at, seq)``, a page at a time from a
cursor. Each filter it offers reads an index that starts where the page does: all rows, one
name, pending rows, dead rows, rows with an error; an id is looked up by the unique index of
``id`` or by one of the Inngest ids that differ from their row's ``id`` (the others are found
by ``id``). The index of pending rows' ``created_at`` gains ``seq`` (the oldest-pending figure
reads it as before).

``relay_probe``'s one row also says whether an operator paused delivery (and who), and since
when the relays see an outage or a refused event key, with its error: what the console shows.
``outbox_attempts`` keeps each failed attempt at delivering a row (its time, Inngest's status
code and the error); rows failed before this revision have none.

Building the indexes reads the whole outbox once; on PostgreSQL writers wait meanwhile.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

PENDING_ONLY = sa.text("status = 'pending'")
DEAD_ONLY = sa.text("status = 'dead'")
FAILED_ONLY = sa.text("last_error IS NOT NULL")
OTHER_INNGEST_ID = sa.text("inngest_id <> id")

# name, columns, the rows it holds (None: all)
INDEXES: tuple[tuple[str, list[str], sa.TextClause | None], ...] = (
    ("ix_outbox_events_created", ["created_at", "seq"], None),
    ("ix_outbox_events_name_created", ["name", "created_at", "seq"], None),
    ("ix_outbox_events_dead_created", ["created_at", "seq"], DEAD_ONLY),
    ("ix_outbox_events_failed_created", ["created_at", "seq"], FAILED_ONLY),
    ("ix_outbox_events_inngest_id", ["inngest_id"], OTHER_INNGEST_ID),
)
STATE_COLUMNS = (
    ("paused_at", sa.BigInteger),
    ("paused_by", sa.Text),
    ("outage_since", sa.BigInteger),
    ("outage_error", sa.Text),
    ("key_refused_since", sa.BigInteger),
    ("key_refused_error", sa.Text),
)


def _pending_created(columns: list[str]) -> None:
    op.drop_index("ix_outbox_events_pending_created", table_name="outbox_events")
    op.create_index(
        "ix_outbox_events_pending_created",
        "outbox_events",
        columns,
        postgresql_where=PENDING_ONLY,
        sqlite_where=PENDING_ONLY,
    )


def upgrade() -> None:
    _pending_created(["created_at", "seq"])
    for name, columns, where in INDEXES:
        op.create_index(name, "outbox_events", columns, postgresql_where=where, sqlite_where=where)
    with op.batch_alter_table("relay_probe") as batch:
        for name, kind in STATE_COLUMNS:
            batch.add_column(sa.Column(name, kind(), nullable=True))
    op.create_table(
        "outbox_attempts",
        sa.Column("event_seq", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=False),
    )
    op.create_index("ix_outbox_attempts_event_seq", "outbox_attempts", ["event_seq", "at"])


def downgrade() -> None:
    op.drop_table("outbox_attempts")
    with op.batch_alter_table("relay_probe") as batch:
        for name, _kind in reversed(STATE_COLUMNS):
            batch.drop_column(name)
    for name, _columns, _where in reversed(INDEXES):
        op.drop_index(name, table_name="outbox_events")
    _pending_created(["created_at"])
