"""assets: a revision, new at every write (catalogue page validators)

Revision ID: 5c1f0e7a9b2d
Revises: 6c1f0e7a2b94
Create Date: 2026-12-02 13:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5c1f0e7a9b2d"
down_revision: str | None = "6c1f0e7a2b94"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # existing rows share the initial revision: a row written from now on gets a random one
    with op.batch_alter_table("asset", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("revision", sa.String(length=32), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("asset", schema=None) as batch_op:
        batch_op.drop_column("revision")
