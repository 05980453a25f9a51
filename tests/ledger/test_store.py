"""The ledger in SQL, on SQLite and PostgreSQL: events appended in the caller's transaction,
batches stored with their signed headers, and a verification that names each event changed,
deleted or moved in the database, and each batch that no longer matches."""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import delete, inspect, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session, col, select

from identity.documents import DIDDocument
from identity.keyring import SigningKey
from ledger import store
from ledger.batches import build_header, sign_header
from ledger.database import migrations
from ledger.digests import HashAlgorithm, digest
from ledger.events import EventError
from ledger.hashchain import GENESIS, Fault, link_entry
from ledger.machine import BatchReady, Closed
from ledger.store import BatchRecord, EventRecord
from storage.engine import create_engine
from storage.migrate import current, differences, downgrade, head, upgrade
from tests.ledger.factories import CONSUMER, PROVIDER, T0, access_event, participant_key


@pytest.fixture
def ledger(engine: Engine) -> Engine:
    upgrade(engine, migrations())
    return engine


@dataclasses.dataclass
class Signer:
    key: SigningKey
    document: DIDDocument


@pytest.fixture
def signer() -> Signer:
    key, document = participant_key()
    return Signer(key, document)


def fill(engine: Engine, signer: Signer, batches: list[tuple[int, int]], total: int) -> None:
    """``total`` events of the provider, closed into ``batches`` (first, last), signed."""
    with Session(engine) as session:
        store.append(session, PROVIDER, [access_event(n) for n in range(total)])
        previous = GENESIS
        for number, (first, last) in enumerate(batches):
            ready = BatchReady(number, first, last, Closed.FULL)
            links = store.links(session, PROVIDER, first, last)
            header, _ = build_header(PROVIDER, ready, links, previous, T0)
            store.save_batch(
                session, header, sign_header(header, signer.key.key_id, signer.key.private_key)
            )
            previous = header.root_bytes
        session.commit()


def check(engine: Engine, signer: Signer) -> store.Verification:
    with Session(engine) as session:
        return store.verify(session, PROVIDER, signer.document)


def named(verification: store.Verification) -> set[tuple[int, Fault]]:
    return {(f.sequence, f.fault) for f in verification.events}


def test_the_migrated_schema_is_the_models(ledger: Engine) -> None:
    assert differences(ledger, migrations()) == []


def test_events_commit_with_the_callers_transaction_or_not_at_all(ledger: Engine) -> None:
    with Session(ledger) as session:
        store.append(session, PROVIDER, [access_event(0), access_event(1)])
        session.rollback()
    with Session(ledger) as session:
        assert store.head(session, PROVIDER) is None
        first = store.append(session, PROVIDER, [access_event(0), access_event(1)])
        session.commit()
    with Session(ledger) as session:
        second = store.append(session, PROVIDER, [access_event(2)])
        session.commit()
        assert [link.sequence for link in first + second] == [0, 1, 2]
        assert second[0].previous_hash == first[1].link_hash
        assert store.head(session, PROVIDER) == second[0]
        assert store.event_count(session, PROVIDER) == 3
        assert store.head(session, CONSUMER) is None


def test_two_transactions_cannot_fork_a_participants_chain(ledger: Engine) -> None:
    """The second writer reads the head while the first has appended but not committed; when
    the first commits, the second fails (a duplicate sequence number on PostgreSQL, a stale
    snapshot on SQLite) instead of committing a second event 0. Should the thread only start
    after the commit (a very slow machine), it must continue the chain, not fork it."""
    failures: list[Exception] = []
    committed: list[int] = []

    def second_writer() -> None:
        with Session(ledger) as session:
            try:
                [link] = store.append(session, PROVIDER, [access_event(1)])
                session.commit()
                committed.append(link.sequence)
            except (IntegrityError, OperationalError) as error:
                failures.append(error)

    with Session(ledger) as first:
        store.append(first, PROVIDER, [access_event(0)])
        writer = threading.Thread(target=second_writer)
        writer.start()
        time.sleep(1.0)
        first.commit()
    writer.join(timeout=30)
    assert len(failures) + len(committed) == 1
    assert committed in ([], [1])
    with Session(ledger) as session:
        assert store.event_count(session, PROVIDER) == 1 + len(committed)
        assert store.verify(session, PROVIDER).ok


def test_an_event_of_another_participant_is_refused(ledger: Engine) -> None:
    with Session(ledger) as session, pytest.raises(EventError):
        store.append(session, PROVIDER, [access_event(0, participant=CONSUMER)])


def test_the_stored_bytes_are_the_hashed_canonical_ones(ledger: Engine) -> None:
    event = access_event(0)
    hashed = store.hash_event(event, HashAlgorithm.SM3)
    with Session(ledger) as session:
        [link] = store.append(session, PROVIDER, [hashed], HashAlgorithm.SM3)
        session.commit()
        [body] = store.events(session, PROVIDER, 0, 0)
    assert body == hashed.body
    assert link.event_hash == digest(HashAlgorithm.SM3, body)


def test_a_clean_ledger_verifies(ledger: Engine, signer: Signer) -> None:
    fill(ledger, signer, [(0, 4), (5, 9)], total=12)
    result = check(ledger, signer)
    assert result.ok, result
    with Session(ledger) as session:
        assert [r.batch_sequence for r in store.unanchored(session, PROVIDER)] == [0, 1]
        assert store.last_batch(session, PROVIDER).last_sequence == 9  # type: ignore[union-attr]


def test_one_changed_byte_of_one_stored_event_is_named(ledger: Engine, signer: Signer) -> None:
    fill(ledger, signer, [(0, 4), (5, 9)], total=10)
    with Session(ledger) as session:
        row = session.get(EventRecord, (PROVIDER, 6))
        assert row is not None
        body = bytearray(row.body)
        body[body.index(b"credit-assessment")] = ord("k")  # purpose becomes "kredit-..."
        row.body = bytes(body)
        session.add(row)
        session.commit()
    result = check(ledger, signer)
    assert named(result) == {(6, Fault.TAMPERED)}
    assert result.events[0].event_id is not None


def test_an_edit_with_recomputed_hashes_is_named_and_breaks_the_root(
    ledger: Engine, signer: Signer
) -> None:
    fill(ledger, signer, [(0, 4), (5, 9)], total=10)
    edited = store.hash_event(access_event(3, purpose="marketing"))
    with Session(ledger) as session:
        row = session.get(EventRecord, (PROVIDER, 3))
        assert row is not None
        row.body, row.event_hash = edited.body, edited.event_hash
        row.link_hash = digest(
            HashAlgorithm.SHA256, link_entry(3, row.previous_hash, edited.event_hash)
        )
        session.add(row)
        session.commit()
    result = check(ledger, signer)
    assert named(result) == {(4, Fault.BROKEN_LINK)}
    assert [(b.batch_sequence, b.fault) for b in result.batches] == [(0, "root_mismatch")]


def test_a_deleted_event_is_named(ledger: Engine, signer: Signer) -> None:
    fill(ledger, signer, [(0, 4), (5, 9)], total=10)
    with Session(ledger) as session:
        session.execute(delete(EventRecord).where(col(EventRecord.sequence) == 2))
        session.commit()
    result = check(ledger, signer)
    assert (2, Fault.GAP) in named(result)
    assert [(b.batch_sequence, b.fault) for b in result.batches] == [(0, "missing_events")]


def test_a_deleted_last_event_is_named_by_its_batch(ledger: Engine, signer: Signer) -> None:
    fill(ledger, signer, [(0, 4), (5, 9)], total=10)
    with Session(ledger) as session:
        session.execute(delete(EventRecord).where(col(EventRecord.sequence) == 9))
        session.commit()
    result = check(ledger, signer)
    assert named(result) == {(9, Fault.GAP)}
    assert [(b.batch_sequence, b.fault) for b in result.batches] == [(1, "missing_events")]


def test_two_reordered_events_are_both_named(ledger: Engine, signer: Signer) -> None:
    fill(ledger, signer, [(0, 4), (5, 9)], total=10)
    with Session(ledger) as session:
        for sequence, new in ((5, -1), (6, 5), (-1, 6)):
            session.execute(
                update(EventRecord)
                .where(col(EventRecord.participant) == PROVIDER)
                .where(col(EventRecord.sequence) == sequence)
                .values(sequence=new)
            )
        session.commit()
    result = check(ledger, signer)
    assert {(5, Fault.TAMPERED), (6, Fault.TAMPERED)} <= named(result)
    assert (1, "root_mismatch") in [(b.batch_sequence, b.fault) for b in result.batches]


def test_a_batch_signed_by_another_key_is_named(ledger: Engine, signer: Signer) -> None:
    fill(ledger, signer, [(0, 4)], total=5)
    impostor, _ = participant_key()
    with Session(ledger) as session:
        record = session.get(BatchRecord, (PROVIDER, 0))
        assert record is not None
        header = store.header_of(record)
        record.signed_header = sign_header(header, impostor.key_id, impostor.private_key)
        session.add(record)
        session.commit()
    result = check(ledger, signer)
    assert [(b.batch_sequence, b.fault) for b in result.batches] == [(0, "bad_header")]
    assert "bad_signature" in result.batches[0].detail


def test_anchors_are_recorded_once(ledger: Engine, signer: Signer) -> None:
    fill(ledger, signer, [(0, 4), (5, 9)], total=10)
    with Session(ledger) as session:
        store.mark_anchored(session, PROVIDER, 0, "0x" + "ab" * 32, 7, T0)
        session.commit()
        assert [r.batch_sequence for r in store.unanchored(session, PROVIDER)] == [1]
        store.mark_anchored(session, PROVIDER, 0, None, 7, T0)
        session.commit()
        record = session.get(BatchRecord, (PROVIDER, 0))
        assert record is not None
        assert record.anchor_transaction == "0x" + "ab" * 32
        with pytest.raises(LookupError):
            store.mark_anchored(session, PROVIDER, 5, None, 1, T0)


def test_the_migration_downgrades_and_upgrades_again(ledger: Engine) -> None:
    downgrade(ledger, migrations(), "base")
    assert current(ledger, migrations()) is None
    assert not inspect(ledger).has_table("ledger_event")
    upgrade(ledger, migrations())
    assert current(ledger, migrations()) == head(migrations())


def test_sqlites_driver_insert_stores_what_the_core_insert_stores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rows ``append`` writes through SQLite's driver (no per-value processing) are, value
    for value and type for type, the rows SQLAlchemy's Core INSERT writes."""
    shanghai = timezone(timedelta(hours=8))
    events = [
        access_event(0),
        access_event(1, counterparty=None, provider_pid=None, consumer_pid="urn:uuid:数据"),
        access_event(2, occurred_at=datetime(2026, 11, 24, 17, 0, 0, 123456, tzinfo=shanghai)),
    ]
    hashed = [store.hash_event(event) for event in events]
    stored = []
    for name, driver in (("driver", True), ("core", False)):
        engine = create_engine(f"sqlite:///{tmp_path / name}.db")
        upgrade(engine, migrations())
        assert (store._driver_insert(engine.dialect) is not None) is True
        if not driver:
            monkeypatch.setattr(store, "_driver_insert", lambda _dialect: None)
        with Session(engine) as session:
            store.append(session, PROVIDER, hashed[:1])
            store.append(session, PROVIDER, hashed[1:])
            session.commit()
        with Session(engine) as session:
            records = session.exec(select(EventRecord).order_by(col(EventRecord.sequence))).all()
            assert [r.event_id for r in records] == [e.event_id for e in events]
            assert [r.occurred_at.replace(tzinfo=UTC) for r in records] == [
                e.occurred_at.astimezone(UTC) for e in events
            ]
        engine.dispose()
        with sqlite3.connect(tmp_path / f"{name}.db") as raw:
            columns = ", ".join(f"{c}, typeof({c})" for c in store._COLUMNS)
            stored.append(raw.execute(f"SELECT {columns} FROM ledger_event").fetchall())  # noqa: S608
    assert len(stored[0]) == 3
    assert stored[0] == stored[1]


def test_a_batch_is_a_range_and_its_rows_are_not_rewritten(ledger: Engine, signer: Signer) -> None:
    fill(ledger, signer, [(0, 4), (5, 7)], total=10)
    with Session(ledger) as session:
        assert store.unbatched(session, PROVIDER) == 2  # 8 and 9
        assert store.unbatched(session, CONSUMER) == 0
        rows = session.exec(select(EventRecord).order_by(col(EventRecord.sequence))).all()
        assert [r.batch_sequence for r in rows] == [None] * 10
        # the archive knows an event's batch when it stores it
        store.append(session, CONSUMER, [access_event(0, participant=CONSUMER)], batch_sequence=0)
        stored = session.get(EventRecord, (CONSUMER, 0))
        assert stored is not None
        assert stored.batch_sequence == 0
        assert store.unbatched(session, CONSUMER) == 1


def test_nothing_is_unbatched_in_an_empty_ledger(ledger: Engine) -> None:
    with Session(ledger) as session:
        assert store.unbatched(session, PROVIDER) == 0
