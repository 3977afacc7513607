"""Remember when a pending row first failed: the relay's time budget counts from then.

A row is dead when Inngest refused it, or when it has kept failing for longer than
``RELAY_GIVE_UP_AFTER`` since its first failed attempt; attempts alone no longer bury it.
Existing rows keep NULL: a pending row that failed before this revision starts its budget at
its next failure, and dead rows stay as they are.

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


def downgrade() -> None:
    with op.batch_alter_table("outbox_events") as batch:
        batch.drop_column("first_failed_at")
