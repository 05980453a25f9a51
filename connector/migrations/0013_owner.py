"""the participant a connector's database belongs to

Revision ID: 8e3f5a7b9c2d
Revises: 7d2e4f6a8b1c
Create Date: 2026-12-03 19:30:00.000000

One row, written by the first connector that starts on the database after this revision: a
start under another DID is refused (two connectors on one database would share its key ring).
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "8e3f5a7b9c2d"
down_revision: str | None = "7d2e4f6a8b1c"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "connector_owner",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("participant", sqlmodel.sql.sqltypes.AutoString(length=2048), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("connector_owner")
