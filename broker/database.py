"""The broker's own database: its SQLModel registry and its migrations."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import registry
from sqlmodel import SQLModel

from storage.migrate import Migrations


class BrokerBase(SQLModel, registry=registry()):
    """Base of every broker table."""


def migrations() -> Migrations:
    # Every module that defines broker tables, so that the metadata is complete.
    from broker.authority import store  # noqa: F401
    from broker.registry import store as registry_store  # noqa: F401
    from broker.search import store as search_store  # noqa: F401

    return Migrations(
        name="broker",
        versions_dir=Path(__file__).parent / "migrations",
        metadata=BrokerBase.metadata,
        version_table="broker_alembic_version",
    )
