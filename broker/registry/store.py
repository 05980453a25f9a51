"""The participant registry's table and queries: every participant the authority onboarded,
with the organisation facts its credentials state, its connector's DSP address and its
standing (:mod:`broker.registry.machine`). Roles are not stored: they are read from the
credentials it holds now (issued, not revoked, not expired)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Column, DateTime
from sqlmodel import Field, Session, col, select

from broker.authority.store import IssuedCredential
from broker.database import BrokerBase
from broker.registry.machine import State
from identity.credentials import CredentialType


class RegisteredParticipant(BrokerBase, table=True):
    __tablename__ = "registered_participant"

    did: str = Field(primary_key=True, max_length=2048)
    name: str = Field(max_length=200)
    """The organisation's name as its credentials state it (in Chinese, as registered)."""
    credit_code: str = Field(max_length=18, index=True)
    """Unified social credit code (统一社会信用代码)."""
    region: str = Field(max_length=6, index=True)
    data_grade: str = Field(max_length=20)
    """The highest data grade it may receive (GB/T 43697), from its credentials."""
    dsp_address: str | None = Field(default=None, max_length=2048)
    """Its connector's DSP base URL, from the DataService entry of its DID document."""
    state: str = Field(max_length=20, index=True)
    reason: str | None = Field(default=None, max_length=1000)
    """Why the operator suspended it (while suspended)."""
    onboarded_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    updated_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


def holders_of(session: Session, credit_code: str, other_than: str) -> list[RegisteredParticipant]:
    """The participants other than ``other_than`` whose credentials state ``credit_code``."""
    return list(
        session.exec(
            select(RegisteredParticipant)
            .where(RegisteredParticipant.credit_code == credit_code)
            .where(RegisteredParticipant.did != other_than)
            .order_by(col(RegisteredParticipant.did))
        ).all()
    )


def utc(moment: datetime) -> datetime:
    """SQLite keeps no zone; only UTC is ever stored."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def held_credentials(session: Session, did: str, now: datetime) -> list[IssuedCredential]:
    """Its credentials that count now: not revoked, not expired."""
    rows = session.exec(
        select(IssuedCredential).where(
            IssuedCredential.holder == did, col(IssuedCredential.revoked_at).is_(None)
        )
    ).all()
    return [row for row in rows if utc(row.expires_at) > now]


def roles_of(credentials: list[IssuedCredential]) -> list[str]:
    return sorted(
        {role for c in credentials if (role := CredentialType(c.credential_type).role) is not None}
    )


@dataclass(frozen=True)
class Filters:
    state: State | None = None
    region: str | None = None
    """A division code: the participants in it (440100 holds 440106)."""
    role: str | None = None
    data_grade: str | None = None


def region_prefix(code: str) -> str:
    """440000 -> 44, 440100 -> 4401, 440106 -> 440106."""
    if code.endswith("0000"):
        return code[:2]
    if code.endswith("00"):
        return code[:4]
    return code


def participants(
    session: Session, filters: Filters, *, now: datetime, offset: int, limit: int
) -> list[RegisteredParticipant]:
    """By DID, a page at a time."""
    query = select(RegisteredParticipant).order_by(col(RegisteredParticipant.did))
    if filters.state is not None:
        query = query.where(RegisteredParticipant.state == filters.state.value)
    if filters.region is not None:
        query = query.where(
            col(RegisteredParticipant.region).startswith(
                region_prefix(filters.region), autoescape=True
            )
        )
    if filters.data_grade is not None:
        query = query.where(RegisteredParticipant.data_grade == filters.data_grade)
    if filters.role is not None:
        kind = CredentialType(filters.role + "Credential")
        holders = select(IssuedCredential.holder).where(
            IssuedCredential.credential_type == kind.value,
            col(IssuedCredential.revoked_at).is_(None),
            col(IssuedCredential.expires_at) > now,
        )
        query = query.where(col(RegisteredParticipant.did).in_(holders))
    return list(session.exec(query.offset(offset).limit(limit)).all())
