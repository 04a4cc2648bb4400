"""stored files: result files written to the blob store once a batch is final
(batches.results_at, results_claimed_until), files removed when their retention ends
(batches.files_removed_at), and uploads expected at a signed URL (batch_inputs.pending,
etag)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 10:00:00

Batches final before this revision have no stored result file yet: the workers write
them (oldest first), unless their retention has ended.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from loadbay.db.tables import UTCDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.add_column(sa.Column("results_at", UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("results_claimed_until", UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("files_removed_at", UTCDateTime(), nullable=True))
        batch_op.create_index(
            op.f("ix_batches_results_at_finished_at"), ["results_at", "finished_at"], unique=False
        )
        batch_op.create_index(
            op.f("ix_batches_files_removed_at_finished_at"), ["files_removed_at", "finished_at"], unique=False
        )
    with op.batch_alter_table("batch_inputs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pending", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column("etag", sa.String(200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("batch_inputs", schema=None) as batch_op:
        batch_op.drop_column("etag")
        batch_op.drop_column("pending")
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.drop_index(op.f("ix_batches_files_removed_at_finished_at"))
        batch_op.drop_index(op.f("ix_batches_results_at_finished_at"))
        batch_op.drop_column("files_removed_at")
        batch_op.drop_column("results_claimed_until")
        batch_op.drop_column("results_at")
