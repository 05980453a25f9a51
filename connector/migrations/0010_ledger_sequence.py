"""audit events: the ledger's fields and sequence; the ledger push watermark

Revision ID: 6c1f0e7a2b94
Revises: a38c570ce382
Create Date: 2026-12-02 13:45:00.000000

Existing audit rows are kept: their new columns are NULL, so the sequencer turns them into
ledger events too (with what they recorded).
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "6c1f0e7a2b94"
down_revision: str | None = "a38c570ce382"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TEXT = sqlmodel.sql.sqltypes.AutoString
_COLUMNS = (
    ("process", 20),
    ("from_state", 30),
    ("to_state", 30),
    ("termination_code", 200),
    ("provider_pid", 500),
    ("consumer_pid", 500),
    ("access_outcome", 20),
    ("duty_action", 200),
    ("evidence_hash", 64),
    ("agreement_id", 500),
    ("agreement_hash", 64),
    ("policy_hash", 64),
)


def upgrade() -> None:
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        for name, length in _COLUMNS:
            batch_op.add_column(sa.Column(name, _TEXT(length=length), nullable=True))
        batch_op.add_column(sa.Column("ledger_sequence", sa.BigInteger(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_audit_event_ledger_sequence"), ["ledger_sequence"], unique=False
        )
    op.create_table(
        "ledger_push",
        sa.Column("participant", _TEXT(length=2048), nullable=False),
        sa.Column("next_batch", sa.BigInteger(), nullable=False),
        sa.Column("refused_batch", sa.BigInteger(), nullable=True),
        sa.Column("refused_reason", _TEXT(length=100), nullable=True),
        sa.Column("refused_message", sa.Text(), nullable=True),
        sa.Column("refused_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("participant"),
    )


def downgrade() -> None:
    op.drop_table("ledger_push")
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_event_ledger_sequence"))
        batch_op.drop_column("ledger_sequence")
        for name, _length in reversed(_COLUMNS):
            batch_op.drop_column(name)
