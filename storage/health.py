"""Database health for a service's ``GET /health``: reachable, and schema at the newest revision."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import version

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from storage.engine import ping
from storage.migrate import Migrations, current, head


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
    return HealthReport(service, database="ok", schema="not migrated" if behind else "current")
