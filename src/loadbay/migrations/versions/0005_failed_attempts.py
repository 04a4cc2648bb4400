"""batches.failed_attempts, chunks.failed_attempts: attempts that failed, apart from the
attempts that were interrupted

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 19:40:00

`attempt` counts every claim (it is the token a late commit must present). An attempt
whose work raised counts in `failed_attempts` against LOADBAY_MAX_ATTEMPTS; the rest
(attempt - 1 - failed_attempts: the worker was killed, lost its lease, waited too long for
a lock or lost its database connection) count against LOADBAY_MAX_INTERRUPTIONS.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("batches", "chunks"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            column = sa.Column("failed_attempts", sa.Integer(), server_default="0", nullable=False)
            batch_op.add_column(column)


def downgrade() -> None:
    for table in ("chunks", "batches"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("failed_attempts")
