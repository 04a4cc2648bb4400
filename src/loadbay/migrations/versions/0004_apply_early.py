"""batches.apply_early, staged_attempt: chunks applied while the batch is still validated

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 17:40:00

Set by the validating worker once it has read the whole file through (so an unreadable
file still applies nothing); from then on the batch's staged chunks may be claimed, and a
worker that takes the validation over resumes after the last staged chunk. Such a
batch's attempts are counted from `staged_attempt`, the last attempt that staged a
chunk: a validation that resumes and goes on is not a failed attempt.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.add_column(sa.Column("apply_early", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column("staged_attempt", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.drop_column("staged_attempt")
        batch_op.drop_column("apply_early")
