"""The regulator benchmark measures what it says: the archive it fills is what the regulator's
service stores and verifies, and each kind of query is checked against the answer it must give
(no timing here: bench/ measures, tests check)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import func, insert
from sqlmodel import Session, col, select

from bench.regulator_bench import (
    Archive,
    Kind,
    Task,
    build_batch,
    fill,
    in_process_ms,
    kinds_of,
    make_event,
    over_http_ms,
    participant_did,
    service,
    tasks_of,
)
from ledger import archive, store
from ledger.database import LedgerBase, migrations
from storage.engine import create_engine
from storage.migrate import upgrade

EVENTS = 20_000
PARTICIPANTS = 10
BATCH = 1_000


@dataclass(frozen=True)
class Filled:
    folder: Path
    archive: Archive


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Filled]:
    folder = tmp_path_factory.mktemp("regulator-bench")
    archive_db = Archive(folder)
    assert fill(archive_db, EVENTS, PARTICIPANTS, workers=1, batch=BATCH) > 0
    yield Filled(folder, archive_db)
    archive_db.close()


def test_the_benchmarked_events_vary_between_participants_counterparties_and_purposes() -> None:
    events = [make_event(index, k, PARTICIPANTS) for k in range(12) for index in range(3)]
    assert all(e.counterparty != e.participant for e in events)
    assert len({e.counterparty for e in events}) > 3
    assert len({e.purpose for e in events}) > 1
    assert len({e.asset_id for e in events}) > 3
    assert any(e.personal_information for e in events)
    assert any(not e.personal_information for e in events)
    times = [e.occurred_at for e in sorted(events, key=lambda e: e.occurred_at)]
    assert len(set(times)) == len(times)


def test_every_participants_batches_come_in_order() -> None:
    tasks = tasks_of(EVENTS, PARTICIPANTS, BATCH)
    assert sum(t.count for t in tasks) == EVENTS
    for index in range(PARTICIPANTS):
        own = [t for t in tasks if t.index == index]
        assert [t.batch_sequence for t in own] == list(range(len(own)))
        assert [t.first for t in own] == [n * BATCH for n in range(len(own))]


def raw_flows(path: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as connection:
        return connection.execute(
            "SELECT * FROM ledger_flow ORDER BY participant, sequence"
        ).fetchall()


def test_the_index_rows_are_stored_as_the_archive_stores_them(tmp_path: Path) -> None:
    task = Task(index=2, batch_sequence=0, first=0, count=50, participants=PARTICIPANTS)
    hashed, rows = build_batch(task)
    ours = Archive(tmp_path)
    assert ours.flow_insert is not None
    ours.take(task, hashed, rows)
    ours.close()
    path = tmp_path / "core.db"
    engine = create_engine(f"sqlite:///{path}")
    upgrade(engine, migrations())
    with Session(engine) as session:
        table = LedgerBase.metadata.tables[archive.FlowRecord.__tablename__]
        session.execute(insert(table), rows)  # as archive.accept inserts them
        session.commit()
    engine.dispose()
    assert raw_flows(ours.path) == raw_flows(path)
    assert len(raw_flows(path)) == 50


def test_the_filled_archive_holds_every_event_chained_batched_and_anchored(
    filled: Filled,
) -> None:
    with Session(filled.archive.engine) as session:
        flows = session.exec(select(func.count()).select_from(archive.FlowRecord)).one()
        assert flows == EVENTS
        for index in range(PARTICIPANTS):
            participant = participant_did(index)
            assert store.event_count(session, participant) == EVENTS // PARTICIPANTS
            assert store.verify(session, participant).ok
            assert store.unanchored(session, participant) == []
            last = store.last_batch(session, participant)
            assert last is not None
            assert last.batch_sequence == EVENTS // PARTICIPANTS // BATCH - 1
            # as archive.accept stores them: each event with its batch
            batches = session.exec(
                select(store.EventRecord.sequence, store.EventRecord.batch_sequence).where(
                    store.EventRecord.participant == participant
                )
            ).all()
            assert all(batch == sequence // BATCH for sequence, batch in batches)


def every_flow_of(filled: Filled, participant: str) -> list[archive.FlowRecord]:
    """The participant's flows, read without the query under test: oldest first."""
    with Session(filled.archive.engine) as session:
        rows = session.exec(
            select(archive.FlowRecord).where(archive.FlowRecord.participant == participant)
        ).all()
    return sorted(rows, key=lambda r: (r.occurred_at, r.sequence))


@pytest.mark.parametrize("index", [0, 3, PARTICIPANTS - 1])
def test_each_kind_of_query_expects_what_the_archive_holds(filled: Filled, index: int) -> None:
    participant = participant_did(index)
    every = every_flow_of(filled, participant)
    assert len(every) == EVENTS // PARTICIPANTS
    first, deep, window = kinds_of(EVENTS, PARTICIPANTS)
    assert deep.offset == EVENTS // PARTICIPANTS - 100
    assert window.since is not None
    assert window.until is not None
    inside = [
        r.sequence
        for r in every
        if window.since <= r.occurred_at.replace(tzinfo=window.since.tzinfo) < window.until
    ]
    assert len(inside) > 100
    expected = {
        first.name: [r.sequence for r in every[:100]],
        deep.name: [r.sequence for r in every[deep.offset : deep.offset + 100]],
        window.name: inside[:100],
    }
    for kind in (first, deep, window):
        assert kind.expected(index, EVENTS, PARTICIPANTS) == expected[kind.name]
        with Session(filled.archive.engine) as session:
            rows = archive.flows(session, kind.query(participant))
        assert [row.sequence for row, _body, _batch in rows] == expected[kind.name]
        assert {row.participant for row, _body, _batch in rows} == {participant}


def sane(figures: dict[str, tuple[float, float]], kinds: list[Kind]) -> None:
    assert set(figures) == {kind.name for kind in kinds}
    for p50, p95 in figures.values():
        assert 0 < p50 <= p95


def test_the_query_alone_is_measured_and_checked(filled: Filled) -> None:
    kinds = kinds_of(EVENTS, PARTICIPANTS)
    sane(in_process_ms(filled.archive.engine, kinds, 4, EVENTS, PARTICIPANTS), kinds)


def test_the_regulator_is_answered_over_http_with_its_credential(filled: Filled) -> None:
    kinds = kinds_of(EVENTS, PARTICIPANTS)
    with service(filled.folder, filled.archive.url) as where:
        figures = over_http_ms(where, kinds, 3, EVENTS, PARTICIPANTS)
    sane(figures, kinds)
    with Session(filled.archive.engine) as session:
        assert session.exec(select(func.count(col(archive.FlowRecord.sequence)))).one() == EVENTS
