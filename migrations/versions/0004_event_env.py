"""Keep the Inngest environment an app sent its events to (``x-inngest-env``).

Events that apps send through ``POST /e/{key}`` may name a branch environment; the relay
forwards it with each request to Inngest. Rows written before this revision, and every
``openapi/app.sync`` event, have none (NULL): they go to the event key's own environment.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox_events") as batch:
        batch.add_column(sa.Column("env", sa.String(256), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox_events") as batch:
        batch.drop_column("env")
