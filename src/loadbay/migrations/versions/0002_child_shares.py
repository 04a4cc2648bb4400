"""child_shares: what a batch's child records add up to, per parent record

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 15:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "child_shares",
        sa.Column("batch_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("parent_key", sa.String(length=300), nullable=False),
        sa.Column("child_key", sa.String(length=300), nullable=False),
        sa.Column("child_batch_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("amount", sa.String(length=60), nullable=False),
        sa.ForeignKeyConstraint(["batch_id"], ["batches.id"], name=op.f("fk_child_shares_batch_id_batches")),
        sa.PrimaryKeyConstraint("batch_id", "parent_key", "child_key", name=op.f("pk_child_shares")),
    )


def downgrade() -> None:
    op.drop_table("child_shares")
