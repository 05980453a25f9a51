"""The ledger's tables: their SQLModel registry and their migrations (own version table), so that
they can live in a connector's database (the participant's record and its outbox) or in the
regulator's service database."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import registry
from sqlmodel import SQLModel

from storage.migrate import Migrations


class LedgerBase(SQLModel, registry=registry()):
    """Base of the ledger tables."""


def migrations() -> Migrations:
    from ledger import archive, store  # noqa: F401 - define the tables

    return Migrations(
        name="ledger",
        versions_dir=Path(__file__).parent / "migrations",
        metadata=LedgerBase.metadata,
        version_table="ledger_alembic_version",
    )
