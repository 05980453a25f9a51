"""negotiations' and transfers' own callback addresses

Revision ID: a0b5c7d9e1f4
Revises: 9f4a6c8e0b3d
Create Date: 2026-12-04 02:00:00.000000

A negotiation or transfer started through the management API may name callback addresses that
hear of its state changes besides the connector's webhook. Existing processes keep NULL: none.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a0b5c7d9e1f4"
down_revision: str | None = "9f4a6c8e0b3d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = ("contract_negotiation", "transfer_process")


def upgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("callbacks", sa.Text(), nullable=True))


def downgrade() -> None:
    for table in reversed(_TABLES):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("callbacks")
