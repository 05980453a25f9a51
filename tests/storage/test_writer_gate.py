"""The in-process writer gate of a SQLite file (storage.engine): a write transaction holds it
from its first write to its end, so that the process's next writer starts the moment the
transaction ends instead of sleeping in SQLite's busy handler."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

import storage.engine
from storage.engine import create_engine

INSERT = sqlalchemy.text("INSERT INTO t VALUES (1)")


@pytest.fixture
def database(tmp_path: Path) -> Iterator[tuple[Engine, threading.Lock]]:
    path = tmp_path / "gate.db"
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        connection.execute(sqlalchemy.text("CREATE TABLE t (x INTEGER)"))
    yield engine, storage.engine._gates[os.path.realpath(path)]
    engine.dispose()


def test_a_write_holds_the_gate_until_commit_and_a_read_never_takes_it(
    database: tuple[Engine, threading.Lock],
) -> None:
    engine, gate = database
    with engine.connect() as connection:
        connection.execute(sqlalchemy.text("SELECT count(*) FROM t"))
        assert not gate.locked()
        connection.execute(INSERT)
        assert gate.locked()
        connection.execute(INSERT)  # the same transaction: it holds the gate already
        connection.commit()
        assert not gate.locked()


@pytest.mark.parametrize("end", ["rollback", "close", "invalidate"])
def test_every_end_of_a_transaction_gives_the_gate_back(
    database: tuple[Engine, threading.Lock], end: str
) -> None:
    engine, gate = database
    connection = engine.connect()
    connection.execute(INSERT)
    assert gate.locked()
    if end == "rollback":
        connection.rollback()
    elif end == "invalidate":
        connection.invalidate()
    connection.close()
    assert not gate.locked()
    with engine.connect() as connection:
        assert connection.execute(sqlalchemy.text("SELECT count(*) FROM t")).scalar_one() == 0


def test_a_second_writer_waits_for_the_first_and_then_writes(
    database: tuple[Engine, threading.Lock],
) -> None:
    engine, gate = database
    done = threading.Event()

    def second() -> None:
        with engine.begin() as connection:
            connection.execute(INSERT)
        done.set()

    with engine.connect() as first:
        first.execute(INSERT)
        writer = threading.Thread(target=second)
        writer.start()
        assert not done.wait(0.2)  # held up by the gate while the first transaction is open
        first.commit()
    writer.join(5)
    assert done.is_set()
    assert not gate.locked()
    with engine.connect() as connection:
        assert connection.execute(sqlalchemy.text("SELECT count(*) FROM t")).scalar_one() == 2


def test_a_writer_that_waits_too_long_gets_database_is_locked(
    database: tuple[Engine, threading.Lock], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, _gate = database
    monkeypatch.setattr(storage.engine, "SQLITE_BUSY_TIMEOUT_S", 0.05)
    failures: list[BaseException] = []

    def second() -> None:
        try:
            with engine.begin() as connection:
                connection.execute(INSERT)
        except OperationalError as error:
            failures.append(error)

    with engine.connect() as first:
        first.execute(INSERT)
        writer = threading.Thread(target=second)
        writer.start()
        writer.join(5)
        first.commit()
    assert len(failures) == 1
    assert "database is locked" in str(failures[0])
