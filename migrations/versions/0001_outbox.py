"""The outbox, the app settings document and idempotency keys.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BigSerial = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
PENDING_ONLY = sa.text("status = 'pending'")


def upgrade() -> None:
    op.create_table(
        "outbox_events",
        sa.Column("seq", BigSerial, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("next_attempt_at", sa.BigInteger(), nullable=False),
        sa.Column("locked_by", sa.String(128)),
        sa.Column("locked_until", sa.BigInteger()),
        sa.Column("last_error", sa.Text()),
        sa.Column("completed_at", sa.BigInteger()),
        sa.Column("replay_of", sa.String(36)),
        sa.PrimaryKeyConstraint("seq", name="pk_outbox_events"),
        sa.UniqueConstraint("id", name="uq_outbox_events_id"),
        sa.CheckConstraint(
            "status IN ('pending', 'delivered', 'dead')", name="ck_outbox_events_status"
        ),
    )
    op.create_index(
        "ix_outbox_events_due",
        "outbox_events",
        ["next_attempt_at", "seq"],
        postgresql_where=PENDING_ONLY,
        sqlite_where=PENDING_ONLY,
    )
    op.create_index(
        "ix_outbox_events_status_completed", "outbox_events", ["status", "completed_at"]
    )
    op.create_index(
        "ix_outbox_events_pending_created",
        "outbox_events",
        ["created_at"],
        postgresql_where=PENDING_ONLY,
        sqlite_where=PENDING_ONLY,
    )

    op.create_table(
        "app_settings",
        sa.Column("id", sa.Integer(), autoincrement=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_app_settings"),
    )

    op.create_table(
        "idempotency_keys",
        sa.Column("caller", sa.String(256), nullable=False),
        sa.Column("key", sa.String(256), nullable=False),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("response", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("caller", "key", name="pk_idempotency_keys"),
    )
    op.create_index("ix_idempotency_keys_expires", "idempotency_keys", ["expires_at"])


def downgrade() -> None:
    op.drop_table("idempotency_keys")
    op.drop_table("app_settings")
    op.drop_table("outbox_events")
