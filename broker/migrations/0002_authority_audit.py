"""the authority's audit trail

Revision ID: 9d4e1a7c3b20
Revises: ebc013bda353
Create Date: 2026-12-02 11:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "9d4e1a7c3b20"
down_revision: str | None = "ebc013bda353"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "authority_audit_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decision", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("subject", sqlmodel.sql.sqltypes.AutoString(length=2048), nullable=False),
        sa.Column("decided_by", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("operator_key_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("request_id", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column("credential_id", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("detail", sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("authority_audit_event", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_authority_audit_event_decision"), ["decision"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_authority_audit_event_request_id"), ["request_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_authority_audit_event_subject"), ["subject"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("authority_audit_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_authority_audit_event_subject"))
        batch_op.drop_index(batch_op.f("ix_authority_audit_event_request_id"))
        batch_op.drop_index(batch_op.f("ix_authority_audit_event_decision"))

    op.drop_table("authority_audit_event")
