"""Events and participants for the ledger tests: real keys, real DID documents, no network."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from identity import keys
from identity.documents import DIDDocument, single_key_document
from identity.keyring import SigningKey
from ledger.canonical import event_bytes
from ledger.digests import HashAlgorithm, digest
from ledger.events import (
    AccessOutcome,
    DataAccessed,
    EventType,
    LedgerEvent,
    LegalBasis,
)
from ledger.hashchain import Link, StoredRecord, append
from policy.operands import Grade

PROVIDER = "did:web:bureau.example.cn"
CONSUMER = "did:web:bank.example.cn"
T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def access_event(n: int = 0, participant: str = PROVIDER, **changes: Any) -> LedgerEvent:
    fields: dict[str, Any] = {
        "participant": participant,
        "occurred_at": T0 + timedelta(seconds=n),
        "counterparty": CONSUMER,
        "provider_pid": f"urn:uuid:provider-{n}",
        "consumer_pid": f"urn:uuid:consumer-{n}",
        "asset_id": "firm-list",
        "data_grade": Grade.IMPORTANT,
        "personal_information": True,
        "person_count": 1000 + n,
        "purpose": "credit-assessment",
        "legal_basis": LegalBasis.CONTRACT_OR_EMPLOYMENT,
        "scenario_domain": "finance",
        "detail": DataAccessed(
            type=EventType.DATA_ACCESSED,
            transfer_id=f"urn:uuid:transfer-{n}",
            bytes_sent=4096 * (n + 1),
            rows_sent=100 + n,
            outcome=AccessOutcome.COMPLETE,
        ),
    }
    fields.update(changes)
    return LedgerEvent(**fields)


def chained(
    count: int, participant: str = PROVIDER, algorithm: HashAlgorithm = HashAlgorithm.SHA256
) -> tuple[list[bytes], list[Link]]:
    """``count`` events of ``participant``: their canonical bytes and their links."""
    data: list[bytes] = []
    links: list[Link] = []
    for n in range(count):
        body = event_bytes(access_event(n, participant))
        links.append(append(links[-1] if links else None, digest(algorithm, body), algorithm))
        data.append(body)
    return data, links


def stored(data: list[bytes], links: list[Link]) -> list[StoredRecord]:
    return [
        StoredRecord(link.sequence, body, link.previous_hash, link.event_hash, link.link_hash)
        for body, link in zip(data, links, strict=True)
    ]


def participant_key(
    did: str = PROVIDER, key_type: keys.KeyType = keys.KeyType.ED25519
) -> tuple[SigningKey, DIDDocument]:
    private = keys.generate(key_type)
    key_id = f"{did}#key-1"
    return SigningKey(key_id, private), single_key_document(did, key_id, private.public_key())
