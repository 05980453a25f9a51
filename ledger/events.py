"""The ledger's event model: one typed, versioned record for everything a connector or the
authority reports to the regulator.

An event is an envelope, the same for every kind (who recorded it, when, with whom, under which
DSP processes, and the fields a regulator asks of every flow: data grade of GB/T 43697-2024,
personal information and how many persons, purpose, legal basis of PIPL article 13, scenario
domain, cross-border), around a ``detail`` whose ``type`` says what happened. Every field is
bounded, so that an event is small and its canonical form (RFC 8785, :mod:`ledger.canonical`)
exists: integers stay within I-JSON's 2^53 - 1, strings and lists have maximum lengths.

Validation is strict (no coercion: ``"12"`` is not a count, ``1`` is not ``true``) and the model
is frozen. ``version`` names this schema; a later schema gets a new number and a model of its
own, and old events keep being read by theirs. This module only describes events: chaining them
(:mod:`ledger.hashchain`), batching and anchoring are elsewhere.
"""

from __future__ import annotations

import os
import time
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)
from pydantic.alias_generators import to_camel

from identity.did import DID
from policy.operands import Grade

SCHEMA_VERSION: Final = 1
MAX_SAFE_INTEGER: Final = 2**53 - 1
"""RFC 8785 (3.2.2.3) serialises numbers as IEEE 754 doubles: larger integers are refused."""
MAX_REASONS: Final = 20
MAX_REASON_CHARS: Final = 2000
MAX_ID_CHARS: Final = 500
MAX_NAME_CHARS: Final = 200
MAX_PSI_PARTIES: Final = 8

Count = Annotated[int, Field(ge=0, le=MAX_SAFE_INTEGER)]
Identifier = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_CHARS)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME_CHARS)]
Reason = Annotated[str, StringConstraints(min_length=1, max_length=MAX_REASON_CHARS)]
Reasons = Annotated[tuple[Reason, ...], Field(max_length=MAX_REASONS)]
HexDigest = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
"""A 32-byte digest (SHA-256 or SM3) in lower-case hex."""


class EventError(ValueError):
    """Bytes or values that are not a valid ledger event."""


def _utc(value: datetime) -> datetime:
    value = value.astimezone(UTC)
    if not 2000 <= value.year <= 9999:
        raise ValueError("a ledger time lies between the years 2000 and 9999")
    return value


UtcTime = Annotated[AwareDatetime, AfterValidator(_utc)]


class _Model(BaseModel):
    model_config = ConfigDict(
        strict=True,
        frozen=True,
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
    )


class EventType(StrEnum):
    ASSET_OFFERED = "asset.offered"
    ASSET_CHANGED = "asset.changed"
    ASSET_WITHDRAWN = "asset.withdrawn"
    NEGOTIATION_STATE_CHANGED = "negotiation.state-changed"
    TRANSFER_STATE_CHANGED = "transfer.state-changed"
    AGREEMENT_CONCLUDED = "agreement.concluded"
    DATA_ACCESSED = "dataplane.access"
    REFUSED = "refusal"
    DUTY_FULFILLED = "duty.fulfilled"
    DUTY_VIOLATED = "duty.violated"
    CREDENTIAL_ISSUED = "credential.issued"
    CREDENTIAL_REVOKED = "credential.revoked"
    PSI_RUN = "psi.run"


class NegotiationState(StrEnum):
    """DSP 2025-1, contract negotiation states."""

    REQUESTED = "REQUESTED"
    OFFERED = "OFFERED"
    ACCEPTED = "ACCEPTED"
    AGREED = "AGREED"
    VERIFIED = "VERIFIED"
    FINALIZED = "FINALIZED"
    TERMINATED = "TERMINATED"


class TransferState(StrEnum):
    """DSP 2025-1, transfer process states."""

    REQUESTED = "REQUESTED"
    STARTED = "STARTED"
    SUSPENDED = "SUSPENDED"
    COMPLETED = "COMPLETED"
    TERMINATED = "TERMINATED"


class LegalBasis(StrEnum):
    """The lawful bases for handling personal information, PIPL (个人信息保护法) article 13."""

    CONSENT = "consent"
    CONTRACT_OR_EMPLOYMENT = "contract-or-employment"
    LEGAL_DUTY = "legal-duty"
    PUBLIC_HEALTH_EMERGENCY = "public-health-emergency"
    NEWS_AND_SUPERVISION = "news-and-supervision"
    DISCLOSED_INFORMATION = "disclosed-information"
    OTHER_LAW = "other-law"


class AccessOutcome(StrEnum):
    COMPLETE = "complete"
    """Everything asked for went out."""
    INTERRUPTED = "interrupted"
    """Cut off (the consumer left, the provider stopped or crashed): counts say what went out."""
    FAILED = "failed"
    """The source failed before or while serving."""


class RefusalScope(StrEnum):
    CATALOG = "catalog"
    NEGOTIATION = "negotiation"
    TRANSFER = "transfer"
    ACCESS = "access"
    CREDENTIAL = "credential"


class RevealMode(StrEnum):
    """What a private set intersection run discloses to a party."""

    INTERSECTION = "intersection"
    CARDINALITY = "cardinality"
    NOTHING = "nothing"


class AssetEvent(_Model):
    type: Literal[EventType.ASSET_OFFERED, EventType.ASSET_CHANGED, EventType.ASSET_WITHDRAWN]
    asset_id: Identifier
    description_hash: HexDigest | None = None
    """The hash of the asset's canonical description, as offered."""


def _check_termination(to_state: str, code: str | None, reasons: tuple[str, ...]) -> None:
    if to_state != "TERMINATED" and (code is not None or reasons):
        raise ValueError("a termination code and reasons belong to a move to TERMINATED")


class NegotiationStateChanged(_Model):
    type: Literal[EventType.NEGOTIATION_STATE_CHANGED]
    from_state: NegotiationState | None = None
    """``None`` for the process's first state."""
    to_state: NegotiationState
    termination_code: Name | None = None
    reasons: Reasons = ()

    @model_validator(mode="after")
    def _termination(self) -> NegotiationStateChanged:
        _check_termination(self.to_state, self.termination_code, self.reasons)
        return self


class TransferStateChanged(_Model):
    type: Literal[EventType.TRANSFER_STATE_CHANGED]
    from_state: TransferState | None = None
    to_state: TransferState
    termination_code: Name | None = None
    reasons: Reasons = ()

    @model_validator(mode="after")
    def _termination(self) -> TransferStateChanged:
        _check_termination(self.to_state, self.termination_code, self.reasons)
        return self


class AgreementConcluded(_Model):
    type: Literal[EventType.AGREEMENT_CONCLUDED]
    agreement_hash: HexDigest
    """The hash of the canonical agreement (policy/agreement.py)."""
    policy_hash: HexDigest


class DataAccessed(_Model):
    type: Literal[EventType.DATA_ACCESSED]
    transfer_id: Identifier
    bytes_sent: Count
    rows_sent: Count | None = None
    """For tabular sources; ``None`` when the source has no rows."""
    outcome: AccessOutcome


class Refused(_Model):
    type: Literal[EventType.REFUSED]
    scope: RefusalScope
    reasons: Annotated[tuple[Reason, ...], Field(min_length=1, max_length=MAX_REASONS)]
    """The policy's reasons, as it gave them."""


class DutyFulfilled(_Model):
    type: Literal[EventType.DUTY_FULFILLED]
    duty_id: Identifier
    action: Name
    receipt_hash: HexDigest
    """The hash of the signed receipt that shows it (a deletion receipt, say)."""


class DutyViolated(_Model):
    type: Literal[EventType.DUTY_VIOLATED]
    duty_id: Identifier
    action: Name
    reasons: Reasons = ()


class CredentialEvent(_Model):
    type: Literal[EventType.CREDENTIAL_ISSUED, EventType.CREDENTIAL_REVOKED]
    credential_id: Identifier
    credential_type: Name
    subject: DID


class PsiParty(_Model):
    participant: DID
    learned: RevealMode
    """Of the intersection: its members, its size, or nothing (a provider learns only the
    size of the consumer's set, which the event records)."""


class PsiRun(_Model):
    type: Literal[EventType.PSI_RUN]
    own_set_size: Count
    peer_set_size: Count
    intersection_size: Count | None = None
    """``None``: the recording party did not learn it (the provider of a run)."""
    reveal_mode: Literal[RevealMode.INTERSECTION, RevealMode.CARDINALITY]
    parties: Annotated[tuple[PsiParty, ...], Field(min_length=1, max_length=MAX_PSI_PARTIES)]
    """Who learned what."""

    @model_validator(mode="after")
    def _intersection_fits(self) -> PsiRun:
        size = self.intersection_size
        if size is not None and size > min(self.own_set_size, self.peer_set_size):
            raise ValueError("an intersection is no larger than either set")
        return self


Detail = Annotated[
    AssetEvent
    | NegotiationStateChanged
    | TransferStateChanged
    | AgreementConcluded
    | DataAccessed
    | Refused
    | DutyFulfilled
    | DutyViolated
    | CredentialEvent
    | PsiRun,
    Field(discriminator="type"),
]


def new_event_id() -> str:
    """A new event id: a UUIDv7 (RFC 9562, section 5.7), 48 bits of Unix time in milliseconds
    then 74 random bits. Ids made later sort later, so the store's unique index on them takes a
    new one at its end; random UUIDv4s went to a random page of it each time, which was about
    40 % of appending an event to a ledger of 100,000 on SQLite."""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    value = value & ~(0xF000 << 64) | 7 << 76  # version 7
    value = value & ~(0xC000 << 48) | 0x8000 << 48  # the RFC's variant
    return str(uuid.UUID(int=value))


class LedgerEvent(_Model):
    """One event as its participant records it (before it is chained)."""

    version: Literal[1] = SCHEMA_VERSION
    event_id: Annotated[str, StringConstraints(pattern=r"^[0-9a-f-]{36}$")] = Field(
        default_factory=new_event_id
    )
    participant: DID
    """Who records the event (the connector's or the authority's DID)."""
    occurred_at: UtcTime
    detail: Detail

    counterparty: DID | None = None
    provider_pid: Identifier | None = None
    """DSP process ids: the provider's record and the consumer's share them."""
    consumer_pid: Identifier | None = None
    asset_id: Identifier | None = None
    agreement_id: Identifier | None = None

    data_grade: Grade | None = None
    personal_information: bool = False
    person_count: Count = 0
    """How many natural persons' information the event concerns."""
    purpose: Name | None = None
    legal_basis: LegalBasis | None = None
    scenario_domain: Name | None = None
    cross_border: bool = False
    """A counterparty or an endpoint outside the mainland."""

    @model_validator(mode="after")
    def _personal_information_is_consistent(self) -> LedgerEvent:
        if not self.personal_information and self.person_count:
            raise ValueError("a person count needs personal_information")
        if not self.personal_information and self.legal_basis is not None:
            raise ValueError("a legal basis (PIPL article 13) is for personal information")
        # Personal information without a stated legal basis is recorded as it happened (a
        # holder's data published before the basis was asked for): the regulator's report
        # counts such events (ledger.reports), a ledger does not hide them.
        return self

    @property
    def type(self) -> EventType:
        return EventType(self.detail.type)

    def to_json(self) -> dict[str, Any]:
        """The JSON form that is canonicalised and hashed: camelCase names, absent fields left
        out, times in UTC."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def parse_event(data: bytes | str) -> LedgerEvent:
    """An event from its JSON; anything else raises :class:`EventError` with the reasons."""
    try:
        return LedgerEvent.model_validate_json(data)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'event'}: {e['msg']}"
            for e in error.errors()[:5]
        )
        raise EventError(f"not a ledger event: {problems}") from None
