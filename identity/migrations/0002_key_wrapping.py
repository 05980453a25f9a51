"""keys: the KDF and its parameters beside each wrapped key

Keys stored before are encrypted PKCS#8 PEM (PBKDF2-HMAC-SHA256 at 2,048 iterations): they are
marked ``pkcs8`` here, and re-wrapped with scrypt when their ring is next loaded (that needs the
passphrase, which a migration does not have). A downgrade is refused while any key is wrapped
with scrypt: the code before this revision could not read it.

Revision ID: 5f0b9d2c7e41
Revises: 2cc58d6b67b7
Create Date: 2026-12-02 10:12:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "5f0b9d2c7e41"
down_revision: str | None = "2cc58d6b67b7"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("identity_key", schema=None) as batch_op:
        batch_op.alter_column("encrypted_pem", new_column_name="wrapped_key")
        batch_op.add_column(
            sa.Column(
                "kdf",
                sqlmodel.sql.sqltypes.AutoString(length=20),
                nullable=False,
                server_default="pkcs8",
            )
        )
        batch_op.add_column(sa.Column("kdf_params", sa.Text(), nullable=False, server_default="{}"))
    with op.batch_alter_table("identity_key", schema=None) as batch_op:
        batch_op.alter_column("kdf", server_default=None)
        batch_op.alter_column("kdf_params", server_default=None)


def downgrade() -> None:
    wrapped = op.get_bind().execute(
        sa.text("SELECT count(*) FROM identity_key WHERE kdf != 'pkcs8'")
    )
    if wrapped.scalar_one():
        raise RuntimeError(
            "identity_key holds keys wrapped with scrypt, which the older schema's code cannot "
            "read: refusing to downgrade"
        )
    with op.batch_alter_table("identity_key", schema=None) as batch_op:
        batch_op.drop_column("kdf_params")
        batch_op.drop_column("kdf")
        batch_op.alter_column("wrapped_key", new_column_name="encrypted_pem")
