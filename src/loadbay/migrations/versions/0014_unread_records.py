"""unread records: a batch cancelled before its validation read all its data waits for a worker
to read the rest and give those records their outcome, unprocessed (batches.unread_pending).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 13:20:00

Batches cancelled before this revision keep their records never read without an outcome.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("unread_pending", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    op.create_index(
        "ix_batches_unread_pending",
        "batches",
        ["finished_at"],
        postgresql_where=sa.text("unread_pending"),
        sqlite_where=sa.text("unread_pending = 1"),  # (as the claim's WHERE reads on SQLite)
    )


def downgrade() -> None:
    op.drop_index("ix_batches_unread_pending", table_name="batches")
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.drop_column("unread_pending")
