"""the ledger's regulator fields: assets' legal basis and persons; counterparty region; PSI sizes

Revision ID: 7d2e4f6a8b1c
Revises: 5c1f0e7a9b2d
Create Date: 2026-12-03 15:40:00.000000

Assets gain the PIPL legal basis and person count of their personal information, negotiations
the region of the counterparty's membership, audit events the set sizes of matching runs.
Existing rows keep NULL: an asset with personal information and no stated legal basis is put on
the ledger as such (the regulator sees the basis missing); nothing is made up.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "7d2e4f6a8b1c"
down_revision: str | None = "5c1f0e7a9b2d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TEXT = sqlmodel.sql.sqltypes.AutoString
_PSI_COUNTS = ("psi_own_items", "psi_peer_items", "psi_intersection")


def upgrade() -> None:
    with op.batch_alter_table("asset", schema=None) as batch_op:
        batch_op.add_column(sa.Column("legal_basis", _TEXT(length=40), nullable=True))
        batch_op.add_column(sa.Column("person_count", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("contract_negotiation", schema=None) as batch_op:
        batch_op.add_column(sa.Column("counterparty_region", _TEXT(length=6), nullable=True))
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.add_column(sa.Column("psi_mode", _TEXT(length=20), nullable=True))
        for name in _PSI_COUNTS:
            batch_op.add_column(sa.Column(name, sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        for name in reversed(_PSI_COUNTS):
            batch_op.drop_column(name)
        batch_op.drop_column("psi_mode")
    with op.batch_alter_table("contract_negotiation", schema=None) as batch_op:
        batch_op.drop_column("counterparty_region")
    with op.batch_alter_table("asset", schema=None) as batch_op:
        batch_op.drop_column("person_count")
        batch_op.drop_column("legal_basis")
