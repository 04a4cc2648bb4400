"""chunk_payloads: a chunk's staged records apart from its row

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 15:30:00

SQLite rewrites a whole row on any change, so the ~1 MB payload was written again on
every claim and finish of its chunk. On PostgreSQL the large text columns are stored
uncompressed (STORAGE EXTERNAL): compressing them cost more than it saved.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "chunk_payloads",
        sa.Column("chunk_id", _ID, nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["chunk_id"], ["chunks.id"], name=op.f("fk_chunk_payloads_chunk_id_chunks")),
        sa.PrimaryKeyConstraint("chunk_id", name=op.f("pk_chunk_payloads")),
    )
    op.execute(
        "INSERT INTO chunk_payloads (chunk_id, payload) "
        "SELECT id, payload FROM chunks WHERE payload IS NOT NULL"
    )
    with op.batch_alter_table("chunks", schema=None) as batch_op:
        batch_op.drop_column("payload")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE chunk_payloads ALTER COLUMN payload SET STORAGE EXTERNAL")
        op.execute(
            "ALTER TABLE chunks ALTER COLUMN outcomes SET STORAGE EXTERNAL, "
            "ALTER COLUMN result SET STORAGE EXTERNAL"
        )


def downgrade() -> None:
    with op.batch_alter_table("chunks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("payload", sa.Text(), nullable=True))
    op.execute(
        "UPDATE chunks SET payload = "
        "(SELECT payload FROM chunk_payloads WHERE chunk_payloads.chunk_id = chunks.id)"
    )
    op.drop_table("chunk_payloads")
