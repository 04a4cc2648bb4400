"""retries: the outcomes a retry took of its batch (batches.retry_outcomes), so that a retry
asked for again is answered with the one made, and one that would send records again that an
earlier retry sent is refused; an index to find a batch's retries (batches.retry_of).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 10:20:00

Retries made before this revision have no outcomes recorded: they took `failed` and
`unprocessed` unless asked otherwise, which is what is assumed of them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.add_column(sa.Column("retry_outcomes", sa.String(100), nullable=True))
        batch_op.create_index(op.f("ix_batches_retry_of"), ["retry_of"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.drop_index(op.f("ix_batches_retry_of"))
        batch_op.drop_column("retry_outcomes")
