"""batches.origin: the API that created the batch ("api" or an API profile's name)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 22:00:00

Batches created before this revision have none (NULL).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.add_column(sa.Column("origin", sa.String(20), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.drop_column("origin")
