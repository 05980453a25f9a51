"""The regulator's re-check of its archive (:mod:`ledger.archive`): every stored event against
its hashes and the hash chain, every batch against its events, the batch before, its signature
(under the DID document kept with it) and the root anchored on chain, every index row against
its event. It names each event and batch that fails, and why (``dataspace ledger verify``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session, col, select

from identity.documents import parse_document
from identity.errors import IdentityError
from ledger import store
from ledger.archive import FlowRecord, ReceivedBatch, flow_row, purged_through
from ledger.batches import BatchError, verify_signed_header
from ledger.canonical import read_canonical_event
from ledger.chain import Chain, ChainError
from ledger.digests import HashAlgorithm
from ledger.events import EventError
from ledger.proofs import CHAIN_DOWN, MovedAnchor, follow_anchor
from ledger.store import BatchRecord


@dataclass(frozen=True)
class Finding:
    """One thing :func:`verify_archive` found wrong."""

    participant: str
    fault: str
    detail: str
    sequence: int | None = None
    event_id: str | None = None
    batch_sequence: int | None = None

    def describe(self) -> str:
        where = []
        if self.event_id is not None:
            where.append(f"event {self.event_id}")
        if self.sequence is not None:
            where.append(f"sequence {self.sequence}")
        if self.batch_sequence is not None:
            where.append(f"batch {self.batch_sequence}")
        return f"{self.participant} {' '.join(where)}: {self.fault}: {self.detail}"


def participants(session: Session) -> list[str]:
    rows = session.exec(select(ReceivedBatch.participant).distinct()).all()
    return sorted(rows)


def _algorithm(session: Session, participant: str) -> HashAlgorithm:
    first = session.exec(
        select(BatchRecord)
        .where(BatchRecord.participant == participant)
        .order_by(col(BatchRecord.batch_sequence))
        .limit(1)
    ).first()
    if first is None:
        return HashAlgorithm.SHA256
    try:
        return store.header_of(first).hash_algorithm
    except ValueError:
        return HashAlgorithm.SHA256


def verify_archive(
    session: Session, chain: Chain | None, moved: list[MovedAnchor] | None = None
) -> list[Finding]:
    """Re-check everything stored: each event against its hashes and the hash chain, each
    batch against its events, the batch before, its signature (under the DID document kept with
    it) and, given ``chain``, the root anchored in the registry the batch names, in the block the
    archive says (``anchor_moved`` when a reorganisation mined it again elsewhere: the bundles
    would name a block the chain no longer shows; given ``moved``, such an anchor is followed
    instead, stored in ``session`` and listed there); each index row against its event. Names
    every event and batch that fails, and why. A :class:`ledger.chain.ChainError` (the node
    down) is raised, not reported as a finding: nothing was checked against the chain."""
    findings: list[Finding] = []
    for participant in participants(session):
        algorithm = _algorithm(session, participant)
        index = {
            row.sequence: row
            for row in session.exec(
                select(FlowRecord).where(FlowRecord.participant == participant)
            ).all()
        }
        start = purged_through(session, participant)
        result = store.verify(session, participant, None, algorithm, start=start)
        for failure in result.events:
            event_id = failure.event_id
            if event_id is None and failure.sequence in index:
                event_id = index[failure.sequence].event_id
            findings.append(
                Finding(
                    participant,
                    failure.fault.value,
                    failure.detail,
                    sequence=failure.sequence,
                    event_id=event_id,
                )
            )
        findings += [
            Finding(participant, f.fault, f.detail, batch_sequence=f.batch_sequence)
            for f in result.batches
        ]
        findings += _check_index(session, participant, index)
        findings += _check_batches(session, participant, chain, moved)
    return findings


def _check_index(session: Session, participant: str, index: dict[int, FlowRecord]) -> list[Finding]:
    findings = []
    for record in store.stored_records(session, participant):
        row = index.get(record.sequence)
        try:
            event = read_canonical_event(record.event)
        except EventError:
            continue  # named already as unreadable
        if row is None:
            findings.append(
                Finding(
                    participant,
                    "not_indexed",
                    "the event has no index row",
                    sequence=record.sequence,
                    event_id=event.event_id,
                )
            )
            continue
        expected = _comparable(flow_row(record.sequence, event))
        stored = _comparable({k: getattr(row, k) for k in expected})
        if stored != expected:
            changed = sorted(k for k in expected if stored[k] != expected[k])
            findings.append(
                Finding(
                    participant,
                    "index_mismatch",
                    f"the index row differs from the event in {', '.join(changed)}",
                    sequence=record.sequence,
                    event_id=event.event_id,
                )
            )
    return findings


def _comparable(row: dict[str, Any]) -> dict[str, Any]:
    """Times compared as instants (SQLite gives them back without their zone)."""
    out = dict(row)
    at = out["occurred_at"]
    if isinstance(at, datetime) and at.tzinfo is not None:
        out["occurred_at"] = at.astimezone(UTC).replace(tzinfo=None)
    return out


def _check_batches(
    session: Session, participant: str, chain: Chain | None, moved: list[MovedAnchor] | None
) -> list[Finding]:
    findings = []
    rows: Sequence[tuple[BatchRecord, ReceivedBatch | None]] = session.exec(
        select(BatchRecord, ReceivedBatch)
        .join(
            ReceivedBatch,
            (col(ReceivedBatch.participant) == col(BatchRecord.participant))
            & (col(ReceivedBatch.batch_sequence) == col(BatchRecord.batch_sequence)),
            isouter=True,
        )
        .where(BatchRecord.participant == participant)
        .order_by(col(BatchRecord.batch_sequence))
    ).all()
    for batch, received in rows:

        def found(fault: str, detail: str, n: int = batch.batch_sequence) -> Finding:
            return Finding(participant, fault, detail, batch_sequence=n)

        if received is None:
            findings.append(found("not_received", "no record of its arrival (account, key)"))
            continue
        try:
            document = parse_document(json.loads(received.did_document), participant)
            header = verify_signed_header(batch.signed_header, document)
        except (IdentityError, BatchError, ValueError) as error:
            findings.append(found("bad_signature", str(error)))
            continue
        if chain is None:
            continue
        try:
            if chain.chain_id != received.chain_id:
                findings.append(found("wrong_chain", f"anchored on chain {received.chain_id}"))
                continue
            registry = chain.registry(received.registry_address, check_code=False)
            anchor = registry.verify_root(received.account, header)
            if registry.did_of(received.account) != participant:
                findings.append(
                    found("wrong_account", f"{received.account} is not registered for it")
                )
            elif moved is not None:
                followed = follow_anchor(session, batch, anchor, registry)
                moved += [] if followed is None else [followed]
            elif (anchor.block_number, registry.anchor_transaction(anchor)) != (
                batch.anchor_block, batch.anchor_transaction,
            ):  # fmt: skip
                findings.append(
                    found(
                        "anchor_moved",
                        f"the chain holds its root in block {anchor.block_number} (that "
                        f"transaction), the archive says block {batch.anchor_block} (a "
                        "reorganisation)",
                    )
                )
        except ChainError as error:
            if error.fault in CHAIN_DOWN:
                raise
            findings.append(found(error.fault.value, error.message))
    return findings
