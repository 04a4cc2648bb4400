"""the staging tables (batch_keys, child_shares) without a foreign key to batches: only the
worker validating a batch writes their rows, batches are never deleted, and on PostgreSQL
the check of each row (a locking read of the batch) cost as much as inserting it

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 11:30:00
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_TABLES = ("batch_keys", "child_shares")


def upgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(f"fk_{table}_batch_id_batches", type_="foreignkey")


def downgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_foreign_key(f"fk_{table}_batch_id_batches", "batches", ["batch_id"], ["id"])
