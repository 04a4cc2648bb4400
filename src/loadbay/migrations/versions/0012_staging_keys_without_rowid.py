"""SQLite: batch_keys WITHOUT ROWID, one B-tree (its primary key) where it had two (the
table's rows and the primary key's index): a validation's keys cost its writes (under the
one write lock) 1.0 s a million instead of 1.4, and deleting them at its end 0.15 s instead
of 0.55. PostgreSQL has no rowids: nothing changes there.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 03:55:00
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    _rebuild(with_rowid=False)


def downgrade() -> None:
    _rebuild(with_rowid=True)


def _rebuild(*, with_rowid: bool) -> None:
    """The table made again (its rows kept) with or without rowids, on SQLite only."""
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table(
        "batch_keys", recreate="always", table_kwargs={"sqlite_with_rowid": with_rowid}
    ):
        pass  # nothing else changes
