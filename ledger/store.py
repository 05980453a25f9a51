"""A participant's ledger in SQL: its chained events and its signed batches, with their anchors.

Events are appended in the caller's transaction (:func:`append`), so that the event describing a
state change commits with the change or not at all; a refusal, whose business transaction rolls
back, is appended in a transaction of its own. Two transactions appending for the same
participant at once cannot both commit: the second one's sequence numbers collide with the
first's (primary key), and it fails rather than fork the chain. Each event is kept as the exact
canonical bytes that were hashed. :func:`verify` re-checks everything stored: each event against
its hashes and the chain, each batch against its events, its signature and the batch before.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, NamedTuple

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    LargeBinary,
    Select,
    Table,
    Text,
    bindparam,
    func,
    insert,
)
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Dialect
from sqlmodel import Field, Session, col, select

from identity import jwt_sign
from identity.documents import DIDDocument
from identity.errors import IdentityError
from ledger.batches import BatchError, BatchHeader, check_batch, verify_signed_header
from ledger.canonical import event_bytes
from ledger.database import LedgerBase
from ledger.digests import HashAlgorithm, digest
from ledger.events import EventError, LedgerEvent
from ledger.hashchain import ChainFailure, Fault, Link, StoredRecord, check_chain
from ledger.hashchain import append as chain_append

MAX_DID_CHARS = 2048


class EventRecord(LedgerBase, table=True):
    __tablename__ = "ledger_event"
    __table_args__ = (Index("ix_ledger_event_participant_batch", "participant", "batch_sequence"),)

    participant: str = Field(primary_key=True, max_length=MAX_DID_CHARS)
    sequence: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    event_id: str = Field(max_length=36, unique=True)
    event_type: str = Field(max_length=50)
    occurred_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    counterparty: str | None = Field(default=None, max_length=MAX_DID_CHARS)
    provider_pid: str | None = Field(default=None, max_length=500)
    """DSP process ids, kept as columns for reconciliation (their indexes come with the
    regulator's queries)."""
    consumer_pid: str | None = Field(default=None, max_length=500)
    body: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    """The event's canonical bytes (RFC 8785), exactly as hashed."""
    event_hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    previous_hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    link_hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    batch_sequence: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    """The event's batch where it is known when the event is stored: in the regulator's archive,
    which receives events with their batch. A participant's own events are batched later, by
    range (``ledger_batch``'s first and last sequence, :func:`unbatched`), and keep ``None``:
    marking each of a batch's rows rewrote every one of them, a third of the ledger's database
    work. Rows marked before that keep their number."""


class BatchRecord(LedgerBase, table=True):
    __tablename__ = "ledger_batch"

    participant: str = Field(primary_key=True, max_length=MAX_DID_CHARS)
    batch_sequence: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    first_sequence: int = Field(sa_column=Column(BigInteger, nullable=False))
    last_sequence: int = Field(sa_column=Column(BigInteger, nullable=False))
    root: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    signed_header: str = Field(sa_column=Column(Text, nullable=False))
    """The compact JWS whose claims are the batch header (:mod:`ledger.batches`)."""
    closed_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    anchor_transaction: str | None = Field(default=None, max_length=66)
    anchor_block: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    anchored_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))


def _events_table() -> Table:
    return LedgerBase.metadata.tables[EventRecord.__tablename__]


class HashedEvent(NamedTuple):
    """An event's canonical bytes, their hash and the columns stored beside them, computed
    before the event is chained: this part is pure and may run in other processes (a tuple:
    it pickles cheaply, unlike a dataclass and its ``__dict__``); chaining is sequential."""

    participant: str
    event_id: str
    event_type: str
    occurred_at: datetime
    counterparty: str | None
    provider_pid: str | None
    consumer_pid: str | None
    body: bytes
    event_hash: bytes


_COLUMNS: Final = (
    "participant", "sequence", "event_id", "event_type", "occurred_at", "counterparty",
    "provider_pid", "consumer_pid", "body", "event_hash", "previous_hash", "link_hash",
    "batch_sequence",
)  # fmt: skip
"""An event row's columns, in the order :func:`append` builds its rows."""


@functools.cache
def _driver_insert(dialect: Dialect) -> tuple[str, Callable[[Any], Any]] | None:
    """The INSERT of an event row as the driver takes it, with what turns a time into the
    dialect's stored form: on SQLite, whose driver stores ``bytes`` as they are (the rows'
    other values need no conversion), so that SQLAlchemy's per-value processing of 13
    parameters of each of thousands of rows (most of a ledger round's time) is not run.
    ``None`` elsewhere: the Core INSERT, as SQLAlchemy converts."""
    if dialect.name != "sqlite" or dialect.paramstyle != "qmark":
        return None
    table = _events_table()
    compiled = insert(table).compile(dialect=dialect, column_keys=list(_COLUMNS))
    if tuple(compiled.positiontup or ()) != _COLUMNS:
        return None
    when = table.c.occurred_at.type.dialect_impl(dialect).bind_processor(dialect)
    return str(compiled), when or _as_is


def _as_is(value: Any) -> Any:
    return value


def hash_event(event: LedgerEvent, algorithm: HashAlgorithm = HashAlgorithm.SHA256) -> HashedEvent:
    body = event_bytes(event)
    return HashedEvent(
        event.participant, event.event_id, event.type.value, event.occurred_at,
        event.counterparty, event.provider_pid, event.consumer_pid,
        body, digest(algorithm, body),
    )  # fmt: skip


def head(session: Session, participant: str) -> Link | None:
    """The participant's last link, or ``None`` before its first event."""
    row = session.exec(
        select(EventRecord)
        .where(EventRecord.participant == participant)
        .order_by(col(EventRecord.sequence).desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    return Link(row.sequence, row.previous_hash, row.event_hash, row.link_hash)


def append(
    session: Session,
    participant: str,
    events: Sequence[LedgerEvent | HashedEvent],
    algorithm: HashAlgorithm = HashAlgorithm.SHA256,
    *,
    start: Link | None = None,
    batch_sequence: int | None = None,
) -> list[Link]:
    """Chain ``events`` after the participant's last one, in the caller's transaction;
    ``start``: the link to go on from when none of its events is stored (a regulator's archive
    after a retention purge); ``batch_sequence``: their batch, when it is known already (the
    archive)."""
    hashed = [e if isinstance(e, HashedEvent) else hash_event(e, algorithm) for e in events]
    for item in hashed:
        if item.participant != participant:
            raise EventError(f"an event of {item.participant} is not {participant}'s")
    last = head(session, participant) or start
    connection = session.connection()
    driver = _driver_insert(connection.dialect)
    when = _as_is if driver is None else driver[1]
    links: list[Link] = []
    rows = []
    for item in hashed:
        last = chain_append(last, item.event_hash, algorithm)
        links.append(last)
        rows.append(
            (
                participant, last.sequence, item.event_id, item.event_type,
                when(item.occurred_at), item.counterparty, item.provider_pid, item.consumer_pid,
                item.body, item.event_hash, last.previous_hash, last.link_hash, batch_sequence,
            )
        )  # fmt: skip
    if rows and driver is not None:
        connection.exec_driver_sql(driver[0], rows)
    elif rows:
        # Core's executemany: the ORM's bulk path costs more per row than the insert itself.
        named = [dict(zip(_COLUMNS, row, strict=True)) for row in rows]
        connection.execute(insert(_events_table()), named)
    return links


@functools.cache
def _links_query() -> Select[Any]:
    """A participant's links from one sequence to another, as a Core statement built once
    (through the ORM, reading a batch's 10,000 links cost twice as much)."""
    table = _events_table()
    return (
        sa_select(table.c.sequence, table.c.previous_hash, table.c.event_hash, table.c.link_hash)
        .where(table.c.participant == bindparam("participant"))
        .where(table.c.sequence >= bindparam("first"), table.c.sequence <= bindparam("last"))
        .order_by(table.c.sequence)
    )


def links(session: Session, participant: str, first: int, last: int) -> list[Link]:
    rows = session.connection().execute(
        _links_query(), {"participant": participant, "first": first, "last": last}
    )
    return [Link(*row) for row in rows]


def events(session: Session, participant: str, first: int, last: int) -> list[bytes]:
    return list(
        session.exec(
            select(EventRecord.body)
            .where(EventRecord.participant == participant)
            .where(col(EventRecord.sequence) >= first, col(EventRecord.sequence) <= last)
            .order_by(col(EventRecord.sequence))
        ).all()
    )


def save_batch(session: Session, header: BatchHeader, signed_header: str) -> None:
    """Record a signed batch, in the caller's transaction. Its events are the participant's
    from ``header.first_sequence`` to ``header.last_sequence``; their rows are not touched."""
    session.add(
        BatchRecord(
            participant=header.participant,
            batch_sequence=header.batch_sequence,
            first_sequence=header.first_sequence,
            last_sequence=header.last_sequence,
            root=header.root_bytes,
            signed_header=signed_header,
            closed_at=header.closed_at,
        )
    )


def header_of(record: BatchRecord) -> BatchHeader:
    """The header as signed (the claims of the stored JWS, not re-verified here)."""
    _protected, claims = jwt_sign.unverified(record.signed_header)
    return BatchHeader.model_validate_json(json.dumps(claims))


def last_batch(session: Session, participant: str) -> BatchRecord | None:
    return session.exec(
        select(BatchRecord)
        .where(BatchRecord.participant == participant)
        .order_by(col(BatchRecord.batch_sequence).desc())
        .limit(1)
    ).first()


def unanchored(session: Session, participant: str) -> list[BatchRecord]:
    """Batches signed but not yet known to be on chain, oldest first."""
    return list(
        session.exec(
            select(BatchRecord)
            .where(BatchRecord.participant == participant)
            .where(col(BatchRecord.anchor_block).is_(None))
            .order_by(col(BatchRecord.batch_sequence))
        ).all()
    )


def mark_anchored(
    session: Session,
    participant: str,
    batch_sequence: int,
    transaction: str | None,
    block: int,
    at: datetime,
) -> None:
    record = session.get(BatchRecord, (participant, batch_sequence))
    if record is None:
        raise LookupError(f"no batch {batch_sequence} of {participant}")
    if record.anchor_transaction is None:
        record.anchor_transaction = transaction
    record.anchor_block = block
    record.anchored_at = at
    session.add(record)


def event_count(session: Session, participant: str) -> int:
    count = session.exec(
        select(func.count()).select_from(EventRecord).where(EventRecord.participant == participant)
    ).one()
    return int(count)


def unbatched(session: Session, participant: str) -> int:
    """How many of the participant's events come after its last batch."""
    last = last_batch(session, participant)
    count = session.exec(
        select(func.count())
        .select_from(EventRecord)
        .where(EventRecord.participant == participant)
        .where(col(EventRecord.sequence) > (-1 if last is None else last.last_sequence))
    ).one()
    return int(count)


def stored_records(
    session: Session, participant: str, chunk: int = 10_000
) -> Iterator[StoredRecord]:
    """Every stored event of ``participant`` in sequence order, read in chunks."""
    after = -1
    while True:
        table = _events_table().c
        rows = session.execute(
            sa_select(
                table.sequence, table.body, table.previous_hash, table.event_hash, table.link_hash
            )
            .where(table.participant == participant, table.sequence > after)
            .order_by(table.sequence)
            .limit(chunk)
        ).all()
        if not rows:
            return
        for row in rows:
            yield StoredRecord(*row)
        after = rows[-1][0]


@dataclass(frozen=True)
class BatchFailure:
    batch_sequence: int
    fault: str
    detail: str


@dataclass(frozen=True)
class Verification:
    events: list[ChainFailure]
    batches: list[BatchFailure]

    @property
    def ok(self) -> bool:
        return not self.events and not self.batches


def verify(
    session: Session,
    participant: str,
    document: DIDDocument | None = None,
    algorithm: HashAlgorithm = HashAlgorithm.SHA256,
    *,
    start: Link | None = None,
) -> Verification:
    """Re-check ``participant``'s stored ledger: every event against its hashes and the chain
    (naming each that fails and why), every batch against its events and the batch before, and,
    given the participant's DID document, every batch's signature. A batch whose events are no
    longer all there names the missing ones, so that a deleted tail is seen too. ``start``: the
    last link of events removed on purpose (a retention purge of whole batches); the chain is
    checked from it, and the batches it ends are checked without their events."""
    records = list(stored_records(session, participant))
    chain_failures = check_chain(participant, records, algorithm, start=start)
    by_sequence = {r.sequence: r for r in records}
    batch_failures: list[BatchFailure] = []
    previous: BatchHeader | None = None
    batch_rows = session.exec(
        select(BatchRecord)
        .where(BatchRecord.participant == participant)
        .order_by(col(BatchRecord.batch_sequence))
    ).all()
    for row in batch_rows:
        try:
            header = (
                verify_signed_header(row.signed_header, document)
                if document is not None
                else header_of(row)
            )
        except (BatchError, IdentityError, ValueError) as error:
            batch_failures.append(BatchFailure(row.batch_sequence, "bad_header", str(error)))
            previous = None
            continue
        if (header.batch_sequence, header.root_bytes) != (row.batch_sequence, row.root):
            batch_failures.append(
                BatchFailure(row.batch_sequence, "header_mismatch", "stored columns differ")
            )
        if start is not None and header.last_sequence <= start.sequence:
            previous = header  # purged on purpose: its events are gone, its header remains
            continue
        missing = [
            n
            for n in range(header.first_sequence, header.last_sequence + 1)
            if n not in by_sequence
        ]
        if missing:
            chain_failures.extend(
                ChainFailure(n, None, Fault.GAP, f"batch {header.batch_sequence} holds it")
                for n in missing
            )
            batch_failures.append(
                BatchFailure(
                    row.batch_sequence, "missing_events", f"{len(missing)} events are gone"
                )
            )
        else:
            batch_links = [
                Link(r.sequence, r.previous_hash, r.event_hash, r.link_hash)
                for r in (
                    by_sequence[n] for n in range(header.first_sequence, header.last_sequence + 1)
                )
            ]
            try:
                check_batch(header, batch_links, previous)
            except BatchError as error:
                batch_failures.append(
                    BatchFailure(row.batch_sequence, error.fault.value, error.message)
                )
        previous = header
    return Verification(sorted(chain_failures, key=lambda f: f.sequence), batch_failures)


def anchored_from(
    session: Session, participant: str, batch_sequence: int, *, limit: int | None = None
) -> list[BatchRecord]:
    """The participant's batches from ``batch_sequence`` on that are marked anchored."""
    return list(
        session.exec(
            select(BatchRecord)
            .where(BatchRecord.participant == participant)
            .where(col(BatchRecord.batch_sequence) >= batch_sequence)
            .where(col(BatchRecord.anchor_block).is_not(None))
            .order_by(col(BatchRecord.batch_sequence))
            .limit(limit)
        ).all()
    )


def unmark_anchored(session: Session, record: BatchRecord) -> None:
    """The chain no longer holds the batch's anchor: it is queued to be anchored again."""
    record.anchor_transaction = record.anchor_block = record.anchored_at = None
    session.add(record)
