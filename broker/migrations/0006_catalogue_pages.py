"""catalogue pages: each provider page's validator and datasets (incremental refresh)

Revision ID: 7d3e9a41c0b5
Revises: eb32a605aed1
Create Date: 2026-12-02 13:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "7d3e9a41c0b5"
down_revision: str | None = "eb32a605aed1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "catalogue_page",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider", sqlmodel.sql.sqltypes.AutoString(length=2048), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("etag", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("dataset_ids", sa.Text(), nullable=False),
        sa.Column("next_url", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("provider", "position"),
    )
    with op.batch_alter_table("catalogue_page", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_catalogue_page_provider"), ["provider"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("catalogue_page", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_catalogue_page_provider"))
    op.drop_table("catalogue_page")
