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
from typing import Final, Protocol

from sqlalchemy import BigInteger, Column, DateTime, insert
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
    # What the ledger needs beyond the trail (connector/ledger.py); each filled where the
    # record is made, only when it is at hand there.
    process: str | None = None
    """``negotiation`` or ``transfer``: the DSP process an event or a refusal is about."""
    from_state: str | None = None
    """A process's state before the move (``None``: its first state, or not a move)."""
    to_state: str | None = None
    termination_code: str | None = None
    provider_pid: str | None = None
    consumer_pid: str | None = None
    access_outcome: str | None = None
    """Data-plane accesses: completed, interrupted, aborted or failed."""
    duty_action: str | None = None
    """Duties: the action owed (``delete``, say)."""
    evidence_hash: str | None = None
    """Duties fulfilled: the SHA-256 (hex) of the signed receipt that shows it; assets offered,
    changed or withdrawn: of their description as offered (management/routes.py)."""
    agreement_id: str | None = None
    agreement_hash: str | None = None
    """A negotiation FINALIZED: the SHA-256 (hex) of the canonical agreement
    (policy/agreement.py), and of its terms (``policy_hash``)."""
    policy_hash: str | None = None
    psi_mode: str | None = None
    """Matching runs (PSI) that completed: what the consumer learned (``intersection`` or
    ``cardinality``), the sizes of our set and the peer's, and of the intersection when we
    learned it (``None`` for the provider, which does not)."""
    psi_own_items: int | None = None
    psi_peer_items: int | None = None
    psi_intersection: int | None = None


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
    process: str | None = Field(default=None, max_length=20)
    from_state: str | None = Field(default=None, max_length=30)
    to_state: str | None = Field(default=None, max_length=30)
    termination_code: str | None = Field(default=None, max_length=200)
    provider_pid: str | None = Field(default=None, max_length=500)
    consumer_pid: str | None = Field(default=None, max_length=500)
    access_outcome: str | None = Field(default=None, max_length=20)
    duty_action: str | None = Field(default=None, max_length=200)
    evidence_hash: str | None = Field(default=None, max_length=64)
    agreement_id: str | None = Field(default=None, max_length=500)
    agreement_hash: str | None = Field(default=None, max_length=64)
    policy_hash: str | None = Field(default=None, max_length=64)
    psi_mode: str | None = Field(default=None, max_length=20)
    psi_own_items: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    psi_peer_items: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    psi_intersection: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    ledger_sequence: int | None = Field(
        default=None, sa_column=Column(BigInteger, nullable=True, index=True)
    )
    """Set by the ledger's sequencer (connector/ledger.py) when the row has been turned into
    the participant's ledger event of that sequence number (the first, when it gave two;
    ``-1``: no ledger event: the operator's own calls, say); ``None``: not sequenced yet."""


_INSERT: Final = insert(AuditEvent.__table__)  # type: ignore[attr-defined]


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
        # Core, on the session's connection, in its transaction: the unit of work cost more
        # per row than the INSERT itself (nothing reads the row back in this transaction)
        session.connection().execute(
            _INSERT,
            {
                "occurred_at": record.occurred_at.astimezone(UTC),
                "actor": record.actor,
                "counterparty": record.counterparty,
                "action": record.action,
                "subject": record.subject,
                "outcome": record.outcome.value,
                "reason": reason,
                "bytes_sent": record.bytes_sent,
                "rows_sent": record.rows_sent,
                "process": record.process,
                "from_state": record.from_state,
                "to_state": record.to_state,
                "termination_code": record.termination_code,
                "provider_pid": record.provider_pid,
                "consumer_pid": record.consumer_pid,
                "access_outcome": record.access_outcome,
                "duty_action": record.duty_action,
                "evidence_hash": record.evidence_hash,
                "agreement_id": record.agreement_id,
                "agreement_hash": record.agreement_hash,
                "policy_hash": record.policy_hash,
                "psi_mode": record.psi_mode,
                "psi_own_items": record.psi_own_items,
                "psi_peer_items": record.psi_peer_items,
                "psi_intersection": record.psi_intersection,
                "ledger_sequence": None,
            },
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
        process=row.process,
        from_state=row.from_state,
        to_state=row.to_state,
        termination_code=row.termination_code,
        provider_pid=row.provider_pid,
        consumer_pid=row.consumer_pid,
        access_outcome=row.access_outcome,
        duty_action=row.duty_action,
        evidence_hash=row.evidence_hash,
        agreement_id=row.agreement_id,
        agreement_hash=row.agreement_hash,
        policy_hash=row.policy_hash,
        psi_mode=row.psi_mode,
        psi_own_items=row.psi_own_items,
        psi_peer_items=row.psi_peer_items,
        psi_intersection=row.psi_intersection,
    )
