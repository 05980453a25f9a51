"""The connector's own database: its SQLModel registry and its migrations."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import registry
from sqlmodel import SQLModel

from storage.migrate import Migrations


class ConnectorBase(SQLModel, registry=registry()):
    """Base of every connector table; keeps them apart from other services' tables."""


def migrations() -> Migrations:
    # Every module that defines connector tables, so that the metadata is complete.
    from connector import (
        audit,  # noqa: F401
        inbox,  # noqa: F401
        ledger,  # noqa: F401
        outbox,  # noqa: F401
        owner,  # noqa: F401
    )
    from connector.catalog import store  # noqa: F401
    from connector.dataplane import store as dataplane_store  # noqa: F401
    from connector.negotiation import store as negotiation_store  # noqa: F401
    from connector.transfer import store as transfer_store  # noqa: F401

    return Migrations(
        name="connector",
        versions_dir=Path(__file__).parent / "migrations",
        metadata=ConnectorBase.metadata,
        version_table="connector_alembic_version",
    )
