"""assets' TC609 registration code (登记编码)

Revision ID: 9f4a6c8e0b3d
Revises: 8e3f5a7b9c2d
Create Date: 2026-12-04 01:30:00.000000

The code under which the data resource is registered with a registration authority, when it
is; the catalogue offers it as ``kexin:registrationCode`` and the broker keeps it. Existing
assets keep NULL: none was registered through Kexin before.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "9f4a6c8e0b3d"
down_revision: str | None = "8e3f5a7b9c2d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("asset", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "registration_code", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("asset", schema=None) as batch_op:
        batch_op.drop_column("registration_code")
