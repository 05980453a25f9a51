"""Database health for a service's ``GET /health``: reachable, writable (a committed write, so
that a read-only or full database is noticed), and schema at the newest revision."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import version
from typing import Final

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from storage.engine import ping
from storage.migrate import Migrations, current, head

MIN_FREE_BYTES: Final = 1 << 20
"""Less free space than this beside a SQLite database: not ready (the next writes fail)."""


@dataclass(frozen=True)
class HealthReport:
    service: str
    database: str
    schema: str

    @property
    def ok(self) -> bool:
        return self.database == "ok" and self.schema in ("current", "no tables")

    def body(self) -> dict[str, str]:
        return {
            "status": "ok" if self.ok else "unavailable",
            "service": self.service,
            "version": version("kexin"),
            "database": self.database,
            "schema": self.schema,
        }


def check_health(service: str, engine: Engine, migrations: Sequence[Migrations]) -> HealthReport:
    """Reachable, and every schema the service keeps in this database at its newest revision."""
    try:
        ping(engine)
    except SQLAlchemyError:
        return HealthReport(service, database="unreachable", schema="unknown")
    if not migrations:
        return HealthReport(service, database="ok", schema="no tables")
    try:
        behind = [m for m in migrations if current(engine, m) != head(m)]
    except SQLAlchemyError:
        return HealthReport(service, database="ok", schema="unknown")
    if behind:
        return HealthReport(service, database="ok", schema="not migrated")
    try:
        probe_write(engine, migrations[0])
    except SQLAlchemyError:
        return HealthReport(service, database="unwritable", schema="current")
    free = sqlite_free_bytes(engine)
    if free is not None and free < MIN_FREE_BYTES:
        return HealthReport(service, database="full", schema="current")
    return HealthReport(service, database="ok", schema="current")


def sqlite_free_bytes(engine: Engine) -> int | None:
    """Free space beside a SQLite database file (None for other databases): a small write may
    still fit in the write-ahead log of a full disk, so the probe alone does not notice."""
    url = engine.url
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    folder = os.path.dirname(os.path.abspath(url.database))
    stats = os.statvfs(folder)
    return stats.f_bavail * stats.f_frsize


def probe_write(engine: Engine, migrations: Migrations) -> None:
    """Commit a write that changes nothing (the schema's version row rewritten as it is): it
    fails on a database that is read-only or full, where ``SELECT 1`` still succeeds."""
    table = migrations.version_table
    with engine.begin() as connection:
        connection.execute(text(f"UPDATE {table} SET version_num = version_num"))  # noqa: S608
