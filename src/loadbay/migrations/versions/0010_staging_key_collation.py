"""staging keys compared by their bytes on PostgreSQL: batch_keys.key and child_shares'
parent_key and child_key take the "C" collation (equality is all they are used for, and the
database's own collation made their unique indexes slower to fill)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 11:00:00

The tables hold rows only while a batch is being validated; ALTER … TYPE rebuilds their
indexes, which is quick when they are near empty.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_COLUMNS = (("batch_keys", "key"), ("child_shares", "parent_key"), ("child_shares", "child_key"))


def upgrade() -> None:
    _collate(sa.String(300, collation="C"), sa.String(300))


def downgrade() -> None:
    _collate(sa.String(300), sa.String(300, collation="C"))


def _collate(new: sa.String, old: sa.String) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, column in _COLUMNS:
        op.alter_column(table, column, type_=new, existing_type=old, existing_nullable=False)
