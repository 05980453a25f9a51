from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

import pytest
import sqlalchemy
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from storage.engine import DatabaseURLError, create_engine, parse_database_url, ping


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("mysql://root@localhost/db", id="other-database"),
        pytest.param("postgresql://u@localhost/db", id="postgres-without-psycopg3"),
        pytest.param("not a url", id="garbage"),
        pytest.param("", id="empty"),
    ],
)
def test_unusable_urls_are_refused_with_a_reason(url: str) -> None:
    with pytest.raises(DatabaseURLError):
        parse_database_url(url)


def test_engine_reaches_each_backend(engine: Engine) -> None:
    ping(engine)


def test_memory_sqlite_is_one_database_for_every_connection() -> None:
    engine = create_engine("sqlite://")
    with engine.begin() as connection:
        connection.execute(sqlalchemy.text("CREATE TABLE t (x INTEGER)"))
        connection.execute(sqlalchemy.text("INSERT INTO t VALUES (1)"))
    with engine.connect() as connection:
        assert connection.execute(sqlalchemy.text("SELECT x FROM t")).scalar_one() == 1


def test_sqlite_file_enforces_foreign_keys(tmp_path: object) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/fk.db")
    with engine.connect() as connection:
        assert connection.execute(sqlalchemy.text("PRAGMA foreign_keys")).scalar_one() == 1
        assert connection.execute(sqlalchemy.text("PRAGMA journal_mode")).scalar_one() == "wal"


def test_unreachable_postgres_raises_on_ping() -> None:
    engine = create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")
    with pytest.raises(OperationalError):
        ping(engine)


def test_sqlite_zeroes_what_is_overwritten(tmp_path: Path) -> None:
    """A value replaced (a token redacted once sent) leaves no copy in the database file."""
    path = tmp_path / "s.db"
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        assert connection.execute(sqlalchemy.text("PRAGMA secure_delete")).scalar_one() == 1
        connection.execute(sqlalchemy.text("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)"))
        connection.execute(
            sqlalchemy.text("INSERT INTO t (body) VALUES (:body)"),
            {"body": "x" * 100 + "raw-secret-token" + "y" * 2000},
        )
    with engine.begin() as connection:
        connection.execute(sqlalchemy.text("UPDATE t SET body = '[redacted]'"))
    engine.dispose()
    assert b"raw-secret-token" not in path.read_bytes()


def _immutable(path: Path, on: bool) -> bool:
    done = subprocess.run(["chattr", "+i" if on else "-i", str(path)], capture_output=True)
    return done.returncode == 0


def test_a_connection_opened_while_only_the_log_was_read_only_is_replaced(tmp_path: Path) -> None:
    """The database and its write-ahead log become writable one after the other: a connection
    opened in between is read-only for good (SQLite opens it so, silently). The pool replaces it
    once both can be written, before anyone writes through it."""
    database = tmp_path / "t.db"
    engine = create_engine(f"sqlite:///{database}")
    keeper = sqlite3.connect(database)  # keeps the log (SQLite removes it at the last close)
    try:
        with engine.begin() as connection:
            connection.execute(sqlalchemy.text("CREATE TABLE t (x INTEGER)"))
        keeper.execute("SELECT * FROM t").fetchall()
        engine.dispose()
        log = tmp_path / "t.db-wal"
        assert log.exists()
        if not _immutable(log, True):
            pytest.skip("chattr +i needs root and a file system that supports it")
        try:
            with engine.connect() as connection:  # opened now: read-only
                connection.execute(sqlalchemy.text("SELECT x FROM t")).all()
        finally:
            assert _immutable(log, False)
        with engine.begin() as connection:  # the same pooled connection, unless replaced
            connection.execute(sqlalchemy.text("INSERT INTO t VALUES (1)"))
        with engine.connect() as connection:
            assert connection.execute(sqlalchemy.text("SELECT x FROM t")).scalar_one() == 1
    finally:
        keeper.close()
        engine.dispose()
