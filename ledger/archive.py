"""The regulator's archive: the batches it accepted from participants, kept in the participants'
own ledger tables (:mod:`ledger.store`: the exact canonical bytes, the chain links, the signed
header and its anchor), beside two tables of its own: the query index of each event (the fields
a regulator filters on) and, per batch, the chain account that anchored it and the DID document
its signature was checked against, so that everything stored can be re-checked later
(:func:`verify_archive`) without asking anyone.

A batch is stored in one transaction of the caller's (:func:`accept`): its events, its header,
its anchor, its index rows, or nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    LargeBinary,
    Text,
    delete,
    func,
    insert,
    or_,
)
from sqlmodel import Field, Session, col, select

from identity.documents import DIDDocument
from ledger import store
from ledger.batches import BatchError, BatchFault, BatchHeader
from ledger.canonical import read_canonical_event
from ledger.database import LedgerBase
from ledger.events import EventError, EventType, LedgerEvent
from ledger.hashchain import Link
from ledger.ingest import CheckedBatch
from ledger.store import MAX_DID_CHARS, EventRecord

if TYPE_CHECKING:
    from ledger.chain import OnChainAnchor


class FlowRecord(LedgerBase, table=True):
    """What the regulator's queries filter on, one row per accepted event (derived from the
    event's bytes, and re-checked against them by :func:`verify_archive`)."""

    __tablename__ = "ledger_flow"
    __table_args__ = (
        Index("ix_ledger_flow_participant_time", "participant", "occurred_at", "sequence"),
        Index("ix_ledger_flow_counterparty_time", "counterparty", "occurred_at"),
        Index("ix_ledger_flow_asset_time", "asset_id", "occurred_at"),
        Index("ix_ledger_flow_purpose_time", "purpose", "occurred_at"),
        Index("ix_ledger_flow_domain_time", "scenario_domain", "occurred_at"),
        Index("ix_ledger_flow_type_time", "event_type", "occurred_at"),
        Index("ix_ledger_flow_time", "occurred_at", "participant", "sequence"),
        Index("ix_ledger_flow_provider_pid", "provider_pid"),
        Index("ix_ledger_flow_consumer_pid", "consumer_pid"),
    )

    participant: str = Field(primary_key=True, max_length=MAX_DID_CHARS)
    sequence: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    event_id: str = Field(max_length=36)
    event_type: str = Field(max_length=50)
    occurred_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    counterparty: str | None = Field(default=None, max_length=MAX_DID_CHARS)
    asset_id: str | None = Field(default=None, max_length=500)
    purpose: str | None = Field(default=None, max_length=200)
    scenario_domain: str | None = Field(default=None, max_length=200)
    provider_pid: str | None = Field(default=None, max_length=500)
    consumer_pid: str | None = Field(default=None, max_length=500)
    data_grade: str | None = Field(default=None, max_length=20)
    personal_information: bool = Field(sa_column=Column(Boolean, nullable=False))
    person_count: int = Field(sa_column=Column(BigInteger, nullable=False))
    cross_border: bool = Field(sa_column=Column(Boolean, nullable=False))


class ReceivedBatch(LedgerBase, table=True):
    """Where a batch accepted by the regulator is anchored, and the DID document whose key
    signed it (as resolved when it arrived)."""

    __tablename__ = "ledger_received_batch"

    participant: str = Field(primary_key=True, max_length=MAX_DID_CHARS)
    batch_sequence: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    account: str = Field(max_length=42)
    chain_id: int = Field(sa_column=Column(BigInteger, nullable=False))
    registry_address: str = Field(max_length=42)
    did_document: str = Field(sa_column=Column(Text, nullable=False))
    received_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


def flow_row(sequence: int, event: LedgerEvent) -> dict[str, Any]:
    return {
        "participant": event.participant,
        "sequence": sequence,
        "event_id": event.event_id,
        "event_type": event.type.value,
        "occurred_at": event.occurred_at,
        "counterparty": event.counterparty,
        "asset_id": event.asset_id,
        "purpose": event.purpose,
        "scenario_domain": event.scenario_domain,
        "provider_pid": event.provider_pid,
        "consumer_pid": event.consumer_pid,
        "data_grade": None if event.data_grade is None else event.data_grade.value,
        "personal_information": event.personal_information,
        "person_count": event.person_count,
        "cross_border": event.cross_border,
    }


@dataclass(frozen=True)
class Where:
    """Where a batch's root is on chain."""

    chain_id: int
    registry: str
    account: str
    anchor: OnChainAnchor
    transaction: str


def accept(
    session: Session,
    checked: CheckedBatch,
    signed_header: str,
    where: Where,
    document: DIDDocument,
    now: datetime,
) -> None:
    """Store an accepted batch in ``session``'s transaction (the caller commits)."""
    header = checked.header
    hashed = [
        store.HashedEvent(
            e.event.participant,
            e.event.event_id,
            e.event.type.value,
            e.event.occurred_at,
            e.event.counterparty,
            e.event.provider_pid,
            e.event.consumer_pid,
            e.body,
            e.event_hash,
        )
        for e in checked.events
    ]
    links = store.append(
        session, header.participant, hashed, header.hash_algorithm,
        start=purged_through(session, header.participant), batch_sequence=header.batch_sequence,
    )  # fmt: skip
    if [link.link_hash for link in links] != [link.link_hash for link in checked.links]:
        # Another transaction appended between the check and now: never store a fork.
        raise BatchError(
            BatchFault.BROKEN_CHAIN, "the participant's ledger moved while this batch was read"
        )
    store.save_batch(session, header, signed_header)
    store.mark_anchored(
        session,
        header.participant,
        header.batch_sequence,
        where.transaction,
        where.anchor.block_number,
        now,
    )
    session.execute(
        insert(LedgerBase.metadata.tables[FlowRecord.__tablename__]),
        [flow_row(link.sequence, e.event) for link, e in zip(links, checked.events, strict=True)],
    )
    session.add(
        ReceivedBatch(
            participant=header.participant,
            batch_sequence=header.batch_sequence,
            account=where.account,
            chain_id=where.chain_id,
            registry_address=where.registry,
            did_document=json.dumps(document.to_json()),
            received_at=now,
        )
    )


def previous_batch(session: Session, participant: str) -> BatchHeader | None:
    last = store.last_batch(session, participant)
    return None if last is None else store.header_of(last)


def stored_bodies(session: Session, header: BatchHeader) -> list[bytes]:
    return store.events(session, header.participant, header.first_sequence, header.last_sequence)


@dataclass(frozen=True)
class FlowQuery:
    participant: str | None = None
    counterparty: str | None = None
    asset_id: str | None = None
    purpose: str | None = None
    scenario_domain: str | None = None
    event_type: EventType | None = None
    since: datetime | None = None
    """Inclusive."""
    until: datetime | None = None
    """Exclusive."""
    offset: int = 0
    limit: int = 100


def flows(session: Session, query: FlowQuery) -> list[tuple[FlowRecord, bytes, int]]:
    """The events that match, oldest first: each index row, the event's bytes and its batch.
    The page is chosen among the index rows alone, then only its rows are joined to their
    events: an offset skips index entries, where skipping joined rows read every skipped
    event too (about 25 ms of SQLite's time at offset 50,000 of 100,000 flows)."""
    order = (col(FlowRecord.occurred_at), col(FlowRecord.participant), col(FlowRecord.sequence))
    page = (
        select(FlowRecord.participant, FlowRecord.sequence)
        .order_by(*order)
        .offset(query.offset)
        .limit(query.limit)
    )
    equal = {
        FlowRecord.participant: query.participant,
        FlowRecord.counterparty: query.counterparty,
        FlowRecord.asset_id: query.asset_id,
        FlowRecord.purpose: query.purpose,
        FlowRecord.scenario_domain: query.scenario_domain,
        FlowRecord.event_type: None if query.event_type is None else query.event_type.value,
    }
    for column, value in equal.items():
        if value is not None:
            page = page.where(col(column) == value)
    if query.since is not None:
        page = page.where(col(FlowRecord.occurred_at) >= _utc(query.since))
    if query.until is not None:
        page = page.where(col(FlowRecord.occurred_at) < _utc(query.until))
    keys = page.subquery("page")
    statement = (
        select(FlowRecord, EventRecord.body, EventRecord.batch_sequence)
        .join(
            keys,
            (col(FlowRecord.participant) == keys.c.participant)
            & (col(FlowRecord.sequence) == keys.c.sequence),
        )
        .join(
            EventRecord,
            (col(EventRecord.participant) == col(FlowRecord.participant))
            & (col(EventRecord.sequence) == col(FlowRecord.sequence)),
        )
        .order_by(*order)
    )
    return [
        (row, bytes(body), -1 if batch is None else int(batch))
        for row, body, batch in session.exec(statement).all()
    ]


def flow_keys(
    session: Session, participant: str | None, offset: int, limit: int
) -> list[tuple[str, str]]:
    """The DSP process id pairs of the cross-entity flows (with ``participant`` on either side),
    in order."""
    statement = (
        select(FlowRecord.provider_pid, FlowRecord.consumer_pid)
        .where(col(FlowRecord.provider_pid).is_not(None), col(FlowRecord.consumer_pid).is_not(None))
        .distinct()
        .order_by(col(FlowRecord.provider_pid), col(FlowRecord.consumer_pid))
        .offset(offset)
        .limit(limit)
    )
    if participant is not None:
        statement = statement.where(
            or_(
                col(FlowRecord.participant) == participant,
                col(FlowRecord.counterparty) == participant,
            )
        )
    return [(str(p), str(c)) for p, c in session.exec(statement).all()]


def flow_events(
    session: Session, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], tuple[list[LedgerEvent], int]]:
    """Every stored event of these flows, by flow (read from the events' own bytes), and how
    many of its stored events are no longer readable events (``dataspace ledger verify``
    names them)."""
    wanted = set(keys)
    found: dict[tuple[str, str], tuple[list[LedgerEvent], int]] = {key: ([], 0) for key in keys}
    if not keys:
        return found
    statement = (
        select(FlowRecord.provider_pid, FlowRecord.consumer_pid, EventRecord.body)
        .join(
            EventRecord,
            (col(EventRecord.participant) == col(FlowRecord.participant))
            & (col(EventRecord.sequence) == col(FlowRecord.sequence)),
        )
        .where(col(FlowRecord.provider_pid).in_(sorted({p for p, _ in keys})))
    )
    for provider_pid, consumer_pid, body in session.exec(statement).all():
        key = (str(provider_pid), str(consumer_pid))
        if key not in wanted:
            continue
        events, unreadable = found[key]
        try:
            events.append(read_canonical_event(bytes(body)))
        except EventError:
            found[key] = (events, unreadable + 1)
    return found


def participant_events(
    session: Session,
    participant: str,
    since: datetime | None,
    until: datetime | None,
    chunk: int = 10_000,
) -> Iterator[LedgerEvent]:
    """The participant's readable events in the period (``since`` inclusive, ``until``
    exclusive), in sequence order, read in chunks."""
    after = -1
    while True:
        statement = (
            select(FlowRecord.sequence, EventRecord.body)
            .join(
                EventRecord,
                (col(EventRecord.participant) == col(FlowRecord.participant))
                & (col(EventRecord.sequence) == col(FlowRecord.sequence)),
            )
            .where(FlowRecord.participant == participant, col(FlowRecord.sequence) > after)
            .order_by(col(FlowRecord.sequence))
            .limit(chunk)
        )
        if since is not None:
            statement = statement.where(col(FlowRecord.occurred_at) >= _utc(since))
        if until is not None:
            statement = statement.where(col(FlowRecord.occurred_at) < _utc(until))
        rows = session.exec(statement).all()
        if not rows:
            return
        for _sequence, body in rows:
            try:
                yield read_canonical_event(bytes(body))
            except EventError:
                continue  # tampered: `dataspace ledger verify` names it
        after = rows[-1][0]


class PurgeRecord(LedgerBase, table=True):
    """A participant's oldest batches whose events were deleted once their retention ended:
    their headers stay (and still verify against the chain), and the last deleted link is kept
    so that the chain of the events after them is checked from it."""

    __tablename__ = "ledger_purge"

    participant: str = Field(primary_key=True, max_length=MAX_DID_CHARS)
    through_batch: int = Field(sa_column=Column(BigInteger, nullable=False))
    last_sequence: int = Field(sa_column=Column(BigInteger, nullable=False))
    last_previous_hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    last_event_hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    last_link_hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    purged_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))

    def link(self) -> Link:
        return Link(
            self.last_sequence, self.last_previous_hash, self.last_event_hash, self.last_link_hash
        )


class RetentionError(ValueError):
    """A deletion the retention period (or the archive's state) does not allow."""


def _utc(value: datetime) -> datetime:
    """``value`` in UTC, as times are stored (SQLite keeps a time's digits and drops its
    offset, so a bound in another offset compared its own wall clock with UTC's)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def purge(
    session: Session, participant: str, through_batch: int, retention: timedelta, now: datetime
) -> int:
    """Delete the events of ``participant``'s batches up to ``through_batch`` (inclusive), in the
    caller's transaction, if every one of them occurred longer than ``retention`` ago; returns
    how many were deleted. Raises :class:`RetentionError` otherwise (nothing deleted)."""
    batch = session.get(store.BatchRecord, (participant, through_batch))
    if batch is None:
        raise RetentionError(f"{participant} has no batch {through_batch}")
    done = session.get(PurgeRecord, participant)
    if done is not None and through_batch <= done.through_batch:
        raise RetentionError(f"batches through {done.through_batch} were purged already")
    last = batch.last_sequence
    youngest = session.exec(
        select(func.max(FlowRecord.occurred_at)).where(
            FlowRecord.participant == participant, col(FlowRecord.sequence) <= last
        )
    ).one()
    if youngest is not None and _utc(youngest) > now - retention:
        raise RetentionError(
            f"an event of {_utc(youngest).isoformat()} in these batches is kept until "
            f"{(_utc(youngest) + retention).isoformat()} (LEDGER_RETENTION_DAYS)"
        )
    final = session.get(EventRecord, (participant, last))
    if final is None:
        raise RetentionError(f"event {last} is not stored: run `dataspace ledger verify`")
    if done is not None:
        session.delete(done)
        session.flush()
    record = PurgeRecord(
        participant=participant,
        through_batch=through_batch,
        last_sequence=last,
        last_previous_hash=final.previous_hash,
        last_event_hash=final.event_hash,
        last_link_hash=final.link_hash,
        purged_at=now,
    )
    session.add(record)
    session.execute(
        delete(FlowRecord).where(
            col(FlowRecord.participant) == participant, col(FlowRecord.sequence) <= last
        )
    )
    deleted = session.exec(
        select(func.count())
        .select_from(EventRecord)
        .where(EventRecord.participant == participant, col(EventRecord.sequence) <= last)
    ).one()
    session.execute(
        delete(EventRecord).where(
            col(EventRecord.participant) == participant, col(EventRecord.sequence) <= last
        )
    )
    return int(deleted)


def purged_through(session: Session, participant: str) -> Link | None:
    """The last link of the participant's purged events, ``None`` if none were."""
    record = session.get(PurgeRecord, participant)
    return None if record is None else record.link()
