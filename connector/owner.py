"""Which participant a connector's database belongs to. Two connectors on one database would
share one key ring (the second opens the first's keys when their passphrases agree), one
catalogue and one audit log: the first connector to start claims the database for its DID, and
every later start under another DID is refused before anything else is read or written."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, DateTime, inspect
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session

from connector.database import ConnectorBase


class DatabaseOwner(ConnectorBase, table=True):
    __tablename__ = "connector_owner"

    id: int = Field(default=1, primary_key=True)
    """Always 1: one owner per database."""
    participant: str = Field(max_length=2048)
    claimed_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class ForeignDatabaseError(Exception):
    """The database belongs to another participant's connector."""

    def __init__(self, owner: str, participant: str) -> None:
        super().__init__(
            f"the database belongs to the connector of {owner}, not {participant}: give each "
            "connector its own database"
        )
        self.owner, self.participant = owner, participant


def owner_of(engine: Engine) -> str | None:
    """The participant that claimed the database; ``None`` before any claim, or before the
    schema that records it."""
    if not inspect(engine).has_table(DatabaseOwner.__tablename__):
        return None
    with Session(engine) as session:
        row = session.get(DatabaseOwner, 1)
        return None if row is None else row.participant


def claim(engine: Engine, participant: str, now: datetime) -> None:
    """Claim the (migrated) database for ``participant``, or find it claimed by it already;
    :class:`ForeignDatabaseError` when another participant claimed it."""
    owner = owner_of(engine)
    if owner is None:
        try:
            with Session(engine) as session:
                session.add(DatabaseOwner(participant=participant, claimed_at=now))
                session.commit()
            return
        except IntegrityError:  # claimed at the same moment by another start
            owner = owner_of(engine)
    if owner != participant:
        raise ForeignDatabaseError(str(owner), participant)
