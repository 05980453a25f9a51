"""catalogue search: a covering index of what a search reads of each matched row

Revision ID: 2b8f61d4e7a3
Revises: 7d3e9a41c0b5
Create Date: 2026-12-02 13:56:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "2b8f61d4e7a3"
down_revision: str | None = "7d3e9a41c0b5"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ["id", "domain", "grade", "region", "provider", "personal_information", "changed_at"]


def upgrade() -> None:
    with op.batch_alter_table("catalogue_dataset", schema=None) as batch_op:
        batch_op.create_index("ix_catalogue_dataset_facets", COLUMNS, unique=False)


def downgrade() -> None:
    with op.batch_alter_table("catalogue_dataset", schema=None) as batch_op:
        batch_op.drop_index("ix_catalogue_dataset_facets")
