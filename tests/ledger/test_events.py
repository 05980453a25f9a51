"""The event model: every kind the connectors and the authority record, strictly validated and
bounded, and a canonical form (RFC 8785) whose hash is the same for everyone."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from ledger.canonical import event_bytes, event_hash, read_canonical_event
from ledger.digests import HashAlgorithm, digest
from ledger.events import (
    MAX_SAFE_INTEGER,
    AccessOutcome,
    AgreementConcluded,
    AssetEvent,
    CredentialEvent,
    DataAccessed,
    DutyFulfilled,
    DutyViolated,
    EventError,
    EventType,
    LedgerEvent,
    NegotiationState,
    NegotiationStateChanged,
    PsiParty,
    PsiRun,
    RefusalScope,
    Refused,
    RevealMode,
    TransferState,
    TransferStateChanged,
    new_event_id,
    parse_event,
)
from tests.ledger.factories import CONSUMER, PROVIDER, T0, access_event

HASH = "ab" * 32

DETAILS = [
    pytest.param(AssetEvent(type=EventType.ASSET_OFFERED, asset_id="a", description_hash=HASH), id="asset-offered"),
    pytest.param(AssetEvent(type=EventType.ASSET_CHANGED, asset_id="a"), id="asset-changed"),
    pytest.param(AssetEvent(type=EventType.ASSET_WITHDRAWN, asset_id="a"), id="asset-withdrawn"),
    pytest.param(NegotiationStateChanged(type=EventType.NEGOTIATION_STATE_CHANGED, from_state=None, to_state=NegotiationState.REQUESTED), id="negotiation-requested"),
    pytest.param(NegotiationStateChanged(type=EventType.NEGOTIATION_STATE_CHANGED, from_state=NegotiationState.OFFERED, to_state=NegotiationState.TERMINATED, termination_code="policy", reasons=("purpose not allowed",)), id="negotiation-terminated"),
    pytest.param(TransferStateChanged(type=EventType.TRANSFER_STATE_CHANGED, from_state=TransferState.STARTED, to_state=TransferState.SUSPENDED), id="transfer-suspended"),
    pytest.param(AgreementConcluded(type=EventType.AGREEMENT_CONCLUDED, agreement_hash=HASH, policy_hash="cd" * 32), id="agreement"),
    pytest.param(DataAccessed(type=EventType.DATA_ACCESSED, transfer_id="t", bytes_sent=0, outcome=AccessOutcome.INTERRUPTED), id="access"),
    pytest.param(Refused(type=EventType.REFUSED, scope=RefusalScope.ACCESS, reasons=("count limit reached",)), id="refusal"),
    pytest.param(DutyFulfilled(type=EventType.DUTY_FULFILLED, duty_id="d", action="delete", receipt_hash=HASH), id="duty-fulfilled"),
    pytest.param(DutyViolated(type=EventType.DUTY_VIOLATED, duty_id="d", action="delete", reasons=("overdue",)), id="duty-violated"),
    pytest.param(CredentialEvent(type=EventType.CREDENTIAL_ISSUED, credential_id="urn:uuid:c", credential_type="MembershipCredential", subject=CONSUMER), id="credential-issued"),
    pytest.param(CredentialEvent(type=EventType.CREDENTIAL_REVOKED, credential_id="urn:uuid:c", credential_type="MembershipCredential", subject=CONSUMER), id="credential-revoked"),
    pytest.param(PsiRun(type=EventType.PSI_RUN, own_set_size=10, peer_set_size=20, intersection_size=3, reveal_mode=RevealMode.CARDINALITY, parties=(PsiParty(participant=CONSUMER, learned=RevealMode.CARDINALITY), PsiParty(participant=PROVIDER, learned=RevealMode.NOTHING))), id="psi"),
]  # fmt: skip


@pytest.mark.parametrize("detail", DETAILS)
def test_every_kind_of_event_survives_its_canonical_form(detail: Any) -> None:
    event = access_event(detail=detail)
    assert event.type == EventType(detail.type)
    data = event_bytes(event)
    assert read_canonical_event(data) == event
    assert parse_event(json.dumps(event.to_json(), indent=2)) == event


def test_the_event_types_are_all_modelled() -> None:
    modelled = {getattr(param.values[0], "type") for param in DETAILS}  # noqa: B009
    assert modelled == set(EventType)


def test_the_canonical_form_is_rfc_8785() -> None:
    event = access_event(
        event_id="00000000-0000-4000-8000-000000000000",
        occurred_at=datetime(2026, 11, 24, 17, 0, 0, 250000, tzinfo=timezone(timedelta(hours=8))),
        purpose='征信 \u2028 "quoted"\n',
    )
    # Keys sorted, no spaces, UTF-8 (not \\u escapes), the time normalised to UTC, absent fields
    # left out (no agreementId), defaults present.
    expected = (
        '{"assetId":"firm-list","consumerPid":"urn:uuid:consumer-0",'
        '"counterparty":"did:web:bank.example.cn","crossBorder":false,"dataGrade":"important",'
        '"detail":{"bytesSent":4096,"outcome":"complete","rowsSent":100,'
        '"transferId":"urn:uuid:transfer-0","type":"dataplane.access"},'
        '"eventId":"00000000-0000-4000-8000-000000000000",'
        '"legalBasis":"contract-or-employment","occurredAt":"2026-11-24T09:00:00.250000Z",'
        '"participant":"did:web:bureau.example.cn","personCount":1000,'
        '"personalInformation":true,"providerPid":"urn:uuid:provider-0",'
        '"purpose":"征信 \u2028 \\"quoted\\"\\n","scenarioDomain":"finance","version":1}'
    ).encode()
    assert event_bytes(event) == expected
    assert event_hash(event) == hashlib.sha256(expected).digest()
    sm3 = event_hash(event, HashAlgorithm.SM3)
    assert sm3 == digest(HashAlgorithm.SM3, expected)
    assert sm3 != event_hash(event)


def test_sm3_is_gb_t_32905() -> None:
    # GB/T 32905-2016, appendix A, example 1
    assert digest(HashAlgorithm.SM3, b"abc").hex() == (
        "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
    )


def test_bytes_that_are_not_canonical_are_refused() -> None:
    event = access_event()
    spaced = json.dumps(event.to_json(), ensure_ascii=False).encode()
    assert parse_event(spaced) == event
    with pytest.raises(EventError, match="canonical"):
        read_canonical_event(spaced)


def fields_of(event: LedgerEvent) -> dict[str, Any]:
    return event.to_json()


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        pytest.param({"personCount": "12"}, "personCount", id="count-as-string"),
        pytest.param({"personCount": True}, "personCount", id="count-as-bool"),
        pytest.param({"personCount": -1}, "personCount", id="negative-count"),
        pytest.param({"personCount": MAX_SAFE_INTEGER + 1}, "personCount", id="count-past-2^53"),
        pytest.param({"personalInformation": 1}, "personalInformation", id="flag-as-int"),
        pytest.param({"personalInformation": False}, "person count", id="count-without-pi"),
        pytest.param({"personalInformation": False, "personCount": 0}, "legal basis", id="legal-basis-without-pi"),
        pytest.param({"legalBasis": "because"}, "legalBasis", id="unknown-legal-basis"),
        pytest.param({"dataGrade": "secret"}, "dataGrade", id="unknown-grade"),
        pytest.param({"counterparty": "bank"}, "counterparty", id="counterparty-not-a-did"),
        pytest.param({"purpose": "p" * 201}, "purpose", id="purpose-too-long"),
        pytest.param({"occurredAt": "2026-11-24T09:00:00"}, "occurredAt", id="time-without-zone"),
        pytest.param({"occurredAt": "1999-12-31T23:00:00Z"}, "occurredAt", id="time-before-2000"),
        pytest.param({"version": 2}, "version", id="unknown-version"),
        pytest.param({"extra": 1}, "extra", id="unknown-field"),
        pytest.param({"detail": {"type": "asset.sold", "assetId": "a"}}, "detail", id="unknown-type"),
        pytest.param({"detail": {"type": "dataplane.access", "transferId": "t", "bytesSent": 1.5, "outcome": "complete"}}, "bytesSent", id="fractional-bytes"),
        pytest.param({"detail": {"type": "refusal", "scope": "access", "reasons": []}}, "reasons", id="refusal-without-reasons"),
        pytest.param({"detail": {"type": "refusal", "scope": "access", "reasons": ["r"] * 21}}, "reasons", id="too-many-reasons"),
        pytest.param({"detail": {"type": "negotiation.state-changed", "fromState": "REQUESTED", "toState": "OFFERED", "terminationCode": "x"}}, "TERMINATED", id="termination-code-without-termination"),
        pytest.param({"detail": {"type": "duty.fulfilled", "dutyId": "d", "action": "delete", "receiptHash": "AB" * 32}}, "receiptHash", id="upper-case-hash"),
        pytest.param({"detail": {"type": "psi.run", "ownSetSize": 2, "peerSetSize": 5, "intersectionSize": 3, "revealMode": "cardinality", "parties": [{"participant": CONSUMER, "learned": "cardinality"}]}}, "intersection", id="intersection-larger-than-a-set"),
    ],
)  # fmt: skip
def test_out_of_range_or_mistyped_fields_are_refused(change: dict[str, Any], problem: str) -> None:
    document = fields_of(access_event()) | change
    with pytest.raises(EventError, match=problem):
        parse_event(json.dumps(document))


def test_python_callers_get_the_same_strictness() -> None:
    with pytest.raises(ValidationError):
        access_event(person_count="12")
    with pytest.raises(ValidationError):
        access_event(occurred_at=datetime(2026, 1, 1))
    event = access_event()
    with pytest.raises(ValidationError):
        event.purpose = "changed"  # type: ignore[misc]


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"[]", id="array"),
        pytest.param(b"{", id="truncated"),
        pytest.param(b"\xff\xfe", id="not-utf8"),
    ],
)
def test_garbage_is_not_an_event(data: bytes) -> None:
    with pytest.raises(EventError):
        parse_event(data)


def test_times_are_kept_in_utc() -> None:
    local = datetime(2026, 11, 24, 17, 0, tzinfo=timezone(timedelta(hours=8)))
    assert access_event(occurred_at=local).occurred_at == T0 + timedelta(hours=0)
    assert access_event(occurred_at=local).to_json()["occurredAt"] == "2026-11-24T09:00:00Z"


def test_event_ids_are_uuid7_in_the_order_they_were_made() -> None:
    before = time.time_ns() // 1_000_000
    ids = []
    for _ in range(5):
        ids.append(new_event_id())
        time.sleep(0.002)
    after = time.time_ns() // 1_000_000
    parsed = [uuid.UUID(i) for i in ids]
    assert {p.version for p in parsed} == {7}
    assert {p.variant for p in parsed} == {uuid.RFC_4122}
    assert all(before <= p.int >> 80 <= after for p in parsed)
    assert ids == sorted(ids)
    assert len({new_event_id() for _ in range(10_000)}) == 10_000
    assert access_event().event_id != access_event().event_id
    assert uuid.UUID(access_event().event_id).version == 7
