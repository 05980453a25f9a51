"""The data-space authority's records: credential requests, issued credentials, status lists,
and the audit trail of its decisions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Final

from sqlalchemy import Column, DateTime, LargeBinary, Text
from sqlmodel import Field, Session, col, select

from broker.database import BrokerBase


class RequestStatus(StrEnum):
    """DCP CredentialStatus values."""

    RECEIVED = "RECEIVED"
    REJECTED = "REJECTED"
    ISSUED = "ISSUED"


class CredentialRequest(BrokerBase, table=True):
    __tablename__ = "credential_request"

    id: str = Field(primary_key=True, max_length=100)
    holder: str = Field(max_length=2048, index=True)
    holder_pid: str = Field(max_length=200)
    credential_types: str = Field(max_length=500)
    """Space-separated credential type names."""
    status: str = Field(max_length=20, index=True)
    write_token: str = Field(sa_column=Column(Text, nullable=False))
    """The holder's access token for delivering into its Credential Service."""
    organisation: str | None = Field(default=None, sa_column=Column(Text))
    """The organisation claims the applicant stated (JSON), for the operator to review."""
    reason: str | None = Field(default=None, max_length=1000)
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    decided_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))


class IssuedCredential(BrokerBase, table=True):
    __tablename__ = "issued_credential"

    id: str = Field(primary_key=True, max_length=200)
    request_id: str = Field(foreign_key="credential_request.id", max_length=100)
    holder: str = Field(max_length=2048, index=True)
    credential_type: str = Field(max_length=100)
    status_list: str = Field(max_length=50)
    status_index: int
    issued_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    revoked_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))


class StatusList(BrokerBase, table=True):
    __tablename__ = "status_list"

    id: str = Field(primary_key=True, max_length=50)
    bits: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    next_index: int = 0


class Decision(StrEnum):
    """What the authority decided (or was asked): one audit event each."""

    REQUEST_RECEIVED = "request_received"
    REQUEST_APPROVED = "request_approved"
    REQUEST_REJECTED = "request_rejected"
    CREDENTIAL_ISSUED = "credential_issued"
    DELIVERY_FAILED = "delivery_failed"
    """Approved, but the holder's Credential Service did not take the credentials: nothing
    was issued, and the request stays RECEIVED for the operator to approve again."""
    CREDENTIAL_REVOKED = "credential_revoked"
    PARTICIPANT_SUSPENDED = "participant_suspended"
    """The operator suspended a registered participant: its credentials' status is set."""
    PARTICIPANT_REINSTATED = "participant_reinstated"


class DecidedBy(StrEnum):
    HOLDER = "holder"
    """The applicant itself: its request was received."""
    OPERATOR = "operator"
    ALLOW_LIST = "allow-list"
    SELF = "self"
    """The authority about itself: the broker's own membership, for its crawler."""


MAX_DETAIL_CHARS: Final = 1000


class AuthorityEvent(BrokerBase, table=True):
    """One decision of the authority, written in the transaction that carries it out: there
    is no decision without its event, and no event of a decision that did not take effect."""

    __tablename__ = "authority_audit_event"

    id: int | None = Field(default=None, primary_key=True)
    occurred_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    decision: str = Field(max_length=40, index=True)
    subject: str = Field(max_length=2048, index=True)
    """The DID of the participant the decision is about (the applicant, the holder)."""
    decided_by: str = Field(max_length=20)
    operator_key_id: str | None = Field(default=None, max_length=40)
    """The operator's API key as ``key:`` and the start of its SHA-256, never the key."""
    request_id: str | None = Field(default=None, max_length=100, index=True)
    credential_id: str | None = Field(default=None, max_length=200)
    detail: str | None = Field(default=None, max_length=MAX_DETAIL_CHARS)
    """Credential types, the rejection's reason, why a delivery failed."""


@dataclass(frozen=True)
class Decider:
    """Who makes a decision: the holder, the allow-list, or an operator by the key's id."""

    by: DecidedBy
    operator_key_id: str | None = None


HOLDER: Final = Decider(DecidedBy.HOLDER)
ALLOW_LIST: Final = Decider(DecidedBy.ALLOW_LIST)
SELF: Final = Decider(DecidedBy.SELF)


def audit(
    session: Session,
    decision: Decision,
    *,
    subject: str,
    decider: Decider,
    now: datetime,
    request_id: str | None = None,
    credential_id: str | None = None,
    detail: str | None = None,
) -> None:
    """Add the event to the caller's transaction: it commits with the decision, or not at all."""
    if detail is not None and len(detail) > MAX_DETAIL_CHARS:
        detail = detail[: MAX_DETAIL_CHARS - 1] + "…"
    session.add(
        AuthorityEvent(
            occurred_at=now.astimezone(UTC), decision=decision.value, subject=subject,
            decided_by=decider.by.value, operator_key_id=decider.operator_key_id,
            request_id=request_id, credential_id=credential_id, detail=detail,
        )
    )  # fmt: skip


def audit_events(
    session: Session,
    *,
    offset: int,
    limit: int,
    subject: str | None = None,
    decision: Decision | None = None,
) -> list[AuthorityEvent]:
    """Newest first."""
    query = select(AuthorityEvent).order_by(col(AuthorityEvent.id).desc())
    if subject is not None:
        query = query.where(AuthorityEvent.subject == subject)
    if decision is not None:
        query = query.where(AuthorityEvent.decision == decision.value)
    return list(session.exec(query.offset(offset).limit(limit)).all())
