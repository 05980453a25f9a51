"""negotiations' and transfers' own callback addresses

Revision ID: a0b5c7d9e1f4
Revises: 9f4a6c8e0b3d
Create Date: 2026-12-04 02:00:00.000000

A negotiation or transfer started through the management API may name callback addresses that
hear of its state changes besides the connector's webhook. Existing processes keep NULL: none.
Each receiver now has its own order in the outbox (key ``<process>#n``, 0 the connector's
webhook): webhook events still pending move to ``#0``, so that they no longer hold the
process's protocol messages and still go before the events enqueued after them.
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
    op.execute(
        "UPDATE outbox_message SET process_id = process_id || '#0' "
        "WHERE kind = 'webhook' AND status = 'pending' AND process_id NOT LIKE '%#%'"
    )


def downgrade() -> None:
    op.execute(
        "UPDATE outbox_message SET process_id = substr(process_id, 1, length(process_id) - 2) "
        "WHERE kind = 'webhook' AND status = 'pending' AND process_id LIKE '%#0'"
    )
    for table in reversed(_TABLES):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("callbacks")
