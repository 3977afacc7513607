"""Delivery through outages: when a row first failed, and the relays' shared probe.

A row is dead when Inngest refused it, or when it has kept failing for longer than
``RELAY_GIVE_UP_AFTER`` since its first failed attempt (``first_failed_at``); attempts alone no
longer bury it. Existing rows keep NULL: a pending row that failed before this revision starts
its budget at its next failure, and dead rows stay as they are.

While Inngest fails every request, the relays of a database take turns through the one row of
``relay_probe``: one probe per interval among all of them, and the time the last one got
through, which ends the outage for every relay.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox_events") as batch:
        batch.add_column(sa.Column("first_failed_at", sa.BigInteger(), nullable=True))
    probe = op.create_table(
        "relay_probe",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("next_probe_at", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("recovered_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_relay_probe"),
    )
    op.bulk_insert(probe, [{"id": 1, "next_probe_at": 0}])


def downgrade() -> None:
    op.drop_table("relay_probe")
    with op.batch_alter_table("outbox_events") as batch:
        batch.drop_column("first_failed_at")
