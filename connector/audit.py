"""Audit events: every state change and every refusal, written through one AuditSink.

An event says who did what, with which counterparty, about which subject, when, with which
outcome and why. Events are stored locally (the connector's database); anchoring them on the
ledger is the ledger's business, not this module's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol

from sqlalchemy import BigInteger, Column, DateTime
from sqlalchemy.engine import Engine
from sqlmodel import Field, Session, col, select

from connector.database import ConnectorBase

MAX_REASON_CHARS = 2000


class Outcome(StrEnum):
    ACCEPTED = "accepted"
    REFUSED = "refused"


@dataclass(frozen=True)
class AuditRecord:
    actor: str
    action: str
    outcome: Outcome
    occurred_at: datetime
    counterparty: str | None = None
    subject: str | None = None
    reason: str | None = None
    bytes_sent: int | None = None
    """Data-plane accesses: how many bytes (and rows, for SQL sources) went out."""
    rows_sent: int | None = None


class AuditSink(Protocol):
    def record(self, record: AuditRecord) -> None:
        """Write the event in a transaction of its own (a refusal: nothing else to commit)."""
        ...

    def add(self, session: Session, record: AuditRecord) -> None:
        """Add the event to the caller's transaction: it commits with the change it records,
        or not at all (no change without its event, even across a crash)."""
        ...


class AuditEvent(ConnectorBase, table=True):
    __tablename__ = "audit_event"

    id: int | None = Field(default=None, primary_key=True)
    occurred_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    actor: str = Field(max_length=2048, index=True)
    counterparty: str | None = Field(default=None, max_length=2048, index=True)
    action: str = Field(max_length=200)
    subject: str | None = Field(default=None, max_length=500, index=True)
    outcome: str = Field(max_length=20)
    reason: str | None = Field(default=None, max_length=MAX_REASON_CHARS)
    bytes_sent: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    rows_sent: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))


class SqlAuditSink:
    """Writes an event in the transaction of the change it records (``add``), or alone
    (``record``, for refusals, after their transaction was rolled back)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def record(self, record: AuditRecord) -> None:
        with Session(self._engine) as session:
            self.add(session, record)
            session.commit()

    def add(self, session: Session, record: AuditRecord) -> None:
        if record.occurred_at.tzinfo is None:
            raise ValueError("audit timestamps must carry a time zone")
        reason = record.reason
        if reason is not None and len(reason) > MAX_REASON_CHARS:
            reason = reason[: MAX_REASON_CHARS - 1] + "…"
        session.add(
            AuditEvent(
                occurred_at=record.occurred_at.astimezone(UTC),
                actor=record.actor,
                counterparty=record.counterparty,
                action=record.action,
                subject=record.subject,
                outcome=record.outcome.value,
                reason=reason,
                bytes_sent=record.bytes_sent,
                rows_sent=record.rows_sent,
            )
        )

    def recent(self, limit: int = 100) -> Sequence[AuditRecord]:
        """The newest events first."""
        with Session(self._engine) as session:
            rows = session.exec(
                select(AuditEvent).order_by(col(AuditEvent.id).desc()).limit(limit)
            ).all()
            return [_to_record(row) for row in rows]


def _to_record(row: AuditEvent) -> AuditRecord:
    occurred_at = row.occurred_at
    if occurred_at.tzinfo is None:  # SQLite keeps no zone; we only ever store UTC.
        occurred_at = occurred_at.replace(tzinfo=UTC)
    return AuditRecord(
        actor=row.actor,
        action=row.action,
        outcome=Outcome(row.outcome),
        occurred_at=occurred_at,
        counterparty=row.counterparty,
        subject=row.subject,
        reason=row.reason,
        bytes_sent=row.bytes_sent,
        rows_sent=row.rows_sent,
    )
