"""What the data plane keeps: the grant behind each provider transfer (the consumer's
credentials as verified when it asked, the token generation, the refresh token's hash), every
access to the data, and the duties of each agreement on both sides."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Final

from sqlalchemy import BigInteger, Column, DateTime, Text
from sqlmodel import Field, Session, col, func, select

from connector.database import ConnectorBase
from connector.negotiation.store import ContractNegotiationRecord
from policy.model import Policy
from policy.operands import parse_datetime

COUNTED: Final = ("in_progress", "completed")
"""Accesses that count as uses of an agreement."""


class DataGrant(ConnectorBase, table=True):
    """Provider side, one per transfer process: what tokens for it are checked against."""

    __tablename__ = "data_grant"

    transfer_id: str = Field(primary_key=True, max_length=100)
    agreement_id: str = Field(max_length=300, index=True)
    consumer: str = Field(max_length=2048)
    credentials: str = Field(sa_column=Column(Text, nullable=False))
    """JSON: the consumer's verified credentials when it asked (type, facts, expiry, status)."""
    generation: int = 0
    """Tokens carry the generation they were issued in; raising it revokes all earlier ones."""
    refresh_hash: str | None = Field(default=None, max_length=64)
    """SHA-256 (hex) of the one refresh token that is valid now."""
    push_state: str | None = Field(default=None, max_length=20, index=True)
    """Push transfers: pending, running, done or failed; None for pull."""
    updated_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class DataAccess(ConnectorBase, table=True):
    """Provider side: one request for the data (or one push), from admission to its end."""

    __tablename__ = "data_access"

    id: int | None = Field(default=None, primary_key=True)
    transfer_id: str = Field(max_length=100, index=True)
    agreement_id: str = Field(max_length=300, index=True)
    consumer: str = Field(max_length=2048)
    outcome: str = Field(max_length=20, index=True)
    """in_progress, completed (counted as a use), failed or interrupted (not counted)."""
    byte_range: str | None = Field(default=None, max_length=100)
    bytes_sent: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    rows_sent: int | None = None
    reason: str | None = Field(default=None, sa_column=Column(Text))
    started_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    ended_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )


class DutyRecord(ConnectorBase, table=True):
    """A duty of an agreement as an obligation with state, kept by both parties."""

    __tablename__ = "duty"

    id: str = Field(primary_key=True, max_length=400)
    """``<agreement id>#<duty path>``: the same on both sides."""
    role: str = Field(primary_key=True, max_length=20)
    agreement_id: str = Field(max_length=300, index=True)
    counterparty: str = Field(max_length=2048)
    duty_path: str = Field(max_length=100)
    action: str = Field(max_length=200)
    party: str = Field(max_length=2048)
    """Who must act."""
    deadline: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    state: str = Field(max_length=20, index=True)
    evidence: str | None = Field(default=None, sa_column=Column(Text))
    """The signed receipt that fulfilled it."""
    receipt_endpoint: str | None = Field(default=None, max_length=2048)
    """Consumer side: where the provider takes receipts."""
    settled_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


def uses(session: Session, agreement_id: str, counted: tuple[str, ...] = COUNTED) -> int:
    """How many times the agreement's data has been used (accesses in ``counted`` outcomes)."""
    return session.exec(
        select(func.count())
        .select_from(DataAccess)
        .where(DataAccess.agreement_id == agreement_id, col(DataAccess.outcome).in_(counted))
    ).one()


def agreement_time(negotiation: ContractNegotiationRecord, policy: Policy) -> datetime:
    """When the agreement was made: its own timestamp (the same on both sides), else when this
    side finalized it."""
    if policy.timestamp:
        with contextlib.suppress(ValueError):
            return parse_datetime(policy.timestamp)
    finalized = negotiation.updated_at
    return finalized if finalized.tzinfo else finalized.replace(tzinfo=UTC)
