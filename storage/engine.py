"""The one engine factory for every Kexin service database.

Two back ends are supported: SQLite (a file, or ``sqlite://`` in memory) as the embedded default,
and PostgreSQL through psycopg 3 (``postgresql+psycopg://``). Anything else is refused when the
URL is read, so that a wrong setting fails at start-up with the variable's name, not at first use.
This module does not create tables: :mod:`storage.migrate` does, through Alembic.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Final

import sqlalchemy
from pydantic import AfterValidator
from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, ExceptionContext, make_url
from sqlalchemy.exc import ArgumentError, DisconnectionError
from sqlalchemy.pool import StaticPool

SUPPORTED_DRIVERS = ("sqlite", "sqlite+pysqlite", "postgresql+psycopg")


class DatabaseURLError(ValueError):
    """A database URL that Kexin cannot use."""


def parse_database_url(value: str) -> URL:
    """Parse and check a database URL; raise :class:`DatabaseURLError` with a plain reason."""
    try:
        url = make_url(value)
    except ArgumentError:
        raise DatabaseURLError(f"not a database URL: {value!r}") from None
    if url.drivername not in SUPPORTED_DRIVERS:
        raise DatabaseURLError(
            f"unsupported database driver {url.drivername!r}; "
            "use sqlite:///path.db or postgresql+psycopg://user@host:port/name"
        )
    return url


def _check_database_url(value: str) -> str:
    parse_database_url(value)
    return value


DatabaseURL = Annotated[str, AfterValidator(_check_database_url)]
"""A settings field type: a string that :func:`parse_database_url` accepts."""


def is_memory_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


LOCK_SUFFIX: Final = "-lock"
"""The lock file beside a served SQLite file: ``<file>-lock`` (:func:`held_sqlite_file`)."""
MIGRATION_LOCK_SUFFIX: Final = "-migration-lock"
"""The lock file beside a SQLite file that its migrations hold (:func:`migrating_sqlite_file`)."""


def sqlite_file(url: URL) -> str | None:
    """The file of a SQLite database URL; None for another database or one in memory."""
    if url.get_backend_name() != "sqlite" or not url.database or is_memory_sqlite(url):
        return None
    return url.database


class DatabaseInUseError(Exception):
    """Another server of ours runs on this SQLite file (or its lock file cannot be made)."""


@contextmanager
def held_sqlite_file(database_url: str) -> Iterator[None]:
    """While the block runs, this process alone may serve from the SQLite file of
    ``database_url``: an exclusive lock on ``<file>-lock`` beside it (released by the system
    when the process ends, however it ends), else :class:`DatabaseInUseError`. Nothing for
    another database: PostgreSQL is shared on purpose (its row locks keep servers apart)."""
    database = sqlite_file(parse_database_url(database_url))
    if database is None:
        yield
        return
    path = os.path.realpath(database) + LOCK_SUFFIX
    try:
        handle = open(path, "a")  # noqa: SIM115 - closed by the with below
    except OSError as error:
        raise DatabaseInUseError(f"cannot make the lock file {path}: {error.strerror}") from None
    with handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DatabaseInUseError(
                f"another server runs on {database} (it holds {path})"
            ) from None
        yield


@contextmanager
def migrating_sqlite_file(url: URL) -> Iterator[None]:
    """While the block runs, no other process migrates the SQLite file of ``url``: an exclusive
    lock on ``<file>-migration-lock``, waited for. Two commands started at the same moment
    (``db upgrade``, or any connector command before its first use of a new file) otherwise
    both find no version table, and the second fails half-way through the first's revisions
    (seen: "duplicate column name", "expected to match one row"). Not the server's lock, which
    a server holds while it migrates at start. Nothing for another database (PostgreSQL: an
    advisory lock, :mod:`storage.migrate`), or when the lock file cannot be made: a folder that
    refuses it refuses SQLite's own journal too, and the migration fails with its own error."""
    database = sqlite_file(url)
    if database is None:
        yield
        return
    try:
        handle = open(os.path.realpath(database) + MIGRATION_LOCK_SUFFIX, "a")  # noqa: SIM115
    except OSError:
        yield
        return
    with handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        yield


POOL_SIZE: Final = 40
"""Database connections kept: one for each of the worker threads that run the services'
blocking work (anyio's default limit is 40), so that a burst of requests never waits for a
connection that another thread holds (SQLAlchemy's default is 5 + 10)."""
POOL_OVERFLOW: Final = 10


def create_engine(database_url: str, *, echo: bool = False) -> Engine:
    """Build the engine for ``database_url``.

    SQLite gets foreign keys on, WAL journaling for files, and one shared connection when in
    memory (otherwise every connection would see its own empty database). PostgreSQL gets
    pre-ping so that a restarted server does not surface as an error on the next request.
    """
    url = parse_database_url(database_url)
    kwargs: dict[str, Any] = {"echo": echo}
    if url.get_backend_name() == "sqlite":
        kwargs["connect_args"] = {"check_same_thread": False}
        if is_memory_sqlite(url):
            kwargs["poolclass"] = StaticPool
        elif url.database:
            kwargs["connect_args"]["factory"] = _gated_connection(url.database)
    else:
        kwargs["pool_pre_ping"] = True
    if "poolclass" not in kwargs:
        kwargs.update(pool_size=POOL_SIZE, max_overflow=POOL_OVERFLOW)
    engine = sqlalchemy.create_engine(url, **kwargs)
    if url.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas(memory=is_memory_sqlite(url)))
        event.listen(engine, "handle_error", _discard_read_only)
        if not is_memory_sqlite(url) and url.database:
            _reopen_when_writable(engine, url.database)
    return engine


SQLITE_BUSY_TIMEOUT_S: Final = 5.0
"""How long a write waits for the database's one writer (SQLite's ``busy_timeout``, and the
in-process gate below)."""

_WRITES: Final = ("INSERT", "UPDATE", "DELETE", "REPLACE")
_gates: dict[str, threading.Lock] = {}
_gates_lock = threading.Lock()


class _GatedCursor(sqlite3.Cursor):
    """A cursor whose writes pass the database's in-process writer gate first."""

    connection: _GatedConnection

    def execute(self, sql: str, parameters: Any = (), /) -> _GatedCursor:
        entered = self.connection.enter_write(sql)
        try:
            super().execute(sql, parameters)
        finally:
            if entered and not self.connection.in_transaction:
                self.connection.leave_write()  # autocommit, or it failed before BEGIN
        return self

    def executemany(self, sql: str, parameters: Any, /) -> _GatedCursor:
        entered = self.connection.enter_write(sql)
        try:
            super().executemany(sql, parameters)
        finally:
            if entered and not self.connection.in_transaction:
                self.connection.leave_write()
        return self


class _GatedConnection(sqlite3.Connection):
    """SQLite lets one transaction write at a time, and a writer that finds the lock taken
    sleeps in SQLite's busy handler in growing steps (1, 2, 5, 10 … 100 ms) before it looks
    again: under concurrent requests, most of a request's time went to those sleeps while the
    lock was long free (measured: 20-40 ms per write transaction, with the CPU half idle).
    This connection's transactions take an in-process gate of the database file before their
    first write and give it back at commit or rollback, so the next writer of this process
    starts the moment the lock is free. Other processes are still kept apart by SQLite's own
    lock and busy timeout."""

    gate: threading.Lock
    _holding = False

    def cursor(self, factory: Any = _GatedCursor) -> Any:
        return super().cursor(factory)

    def enter_write(self, sql: str) -> bool:
        if self._holding or self.in_transaction or not sql.lstrip()[:7].upper().startswith(_WRITES):
            return False
        if not self.gate.acquire(timeout=SQLITE_BUSY_TIMEOUT_S):
            raise sqlite3.OperationalError("database is locked")
        self._holding = True
        return True

    def leave_write(self) -> None:
        if self._holding:
            self._holding = False
            self.gate.release()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            if not self.in_transaction:
                self.leave_write()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.leave_write()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.leave_write()

    def __del__(self) -> None:
        # a connection dropped without close (never by the pool) does not keep the gate
        self.leave_write()


def _gated_connection(path: str) -> type[_GatedConnection]:
    """The connection class for the database file at ``path``: one gate per file and process,
    shared by every engine that opens it."""
    key = os.path.realpath(path)
    with _gates_lock:
        gate = _gates.setdefault(key, threading.Lock())
    return type("GatedConnection", (_GatedConnection,), {"gate": gate})


def _reopen_when_writable(engine: Engine, path: str) -> None:
    """SQLite opens a file it cannot write read-only, silently, and the connection stays so for
    good: note, before each connection is opened, whether the file is writable, and when one opened
    while it was not is checked out once the file is writable again, the pool replaces it
    (before any caller writes through it and gets "readonly database")."""

    files = (path, path + "-wal")

    def writable() -> bool:
        # the write-ahead log too: a connection opened while the file could be written but its
        # log could not (the two are made writable one after the other) is read-only as well
        return all(os.access(f, os.W_OK) or not os.path.exists(f) for f in files)

    def before_connect(_dialect: Any, record: Any, _args: Any, _params: Any) -> None:
        # looked at before SQLite opens the file: looked at after, a file made writable in
        # between passed a connection that SQLite had opened read-only (one 503 after a fault
        # had cleared, now and then)
        record.info["opened_unwritable"] = not writable()

    def on_checkout(_dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if record.info.get("opened_unwritable") and writable():
            raise DisconnectionError("opened while the database could not be written")

    event.listen(engine, "do_connect", before_connect)
    event.listen(engine, "checkout", on_checkout)


SQLITE_READONLY: Final = 8
"""SQLite's primary result code for "attempt to write a readonly database" (its extended codes
carry it in the low byte)."""
SQLITE_IOERR: Final = 10
"""SQLite's "disk I/O error": what a write into a file made immutable meanwhile gets."""


def _discard_read_only(context: ExceptionContext) -> None:
    """A SQLite connection opened while its file could not be written (read-only, immutable)
    stays read-only for good, even once the file is writable again, and one that met an I/O
    error may be left unusable: treat either error as a lost connection, so that the pool
    closes it (and the others it holds) and opens new ones."""
    error = context.original_exception
    code = getattr(error, "sqlite_errorcode", None)
    if isinstance(error, sqlite3.OperationalError) and isinstance(code, int):
        context.is_disconnect = context.is_disconnect or code & 0xFF in (
            SQLITE_READONLY,
            SQLITE_IOERR,
        )


def _sqlite_pragmas(*, memory: bool) -> Any:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        # What is deleted or overwritten (a token redacted once sent) is zeroed in the file,
        # not left in free space: Debian's SQLite does this by default, others do not.
        cursor.execute("PRAGMA secure_delete=ON")
        if not memory:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
            # WAL with NORMAL: no fsync per commit; a crash loses no integrity, at most the last
            # commits on power loss.
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return on_connect


def ping(engine: Engine) -> None:
    """Run ``SELECT 1``; raises SQLAlchemy's error when the database cannot be reached."""
    with engine.connect() as connection:
        connection.execute(sqlalchemy.text("SELECT 1"))
