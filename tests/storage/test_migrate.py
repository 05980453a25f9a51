"""Migrations against SQLite and a real PostgreSQL: the migrated schema equals the models."""

from __future__ import annotations

from dataclasses import replace

import sqlalchemy
from sqlalchemy import Column, MetaData, String
from sqlalchemy.engine import Engine

from connector.database import migrations
from storage.migrate import current, downgrade, head, upgrade
from storage.migrate import differences as schema_differences


def test_migrated_schema_equals_the_models(engine: Engine) -> None:
    upgrade(engine, migrations())
    assert current(engine, migrations()) == head(migrations())
    assert schema_differences(engine, migrations()) == []


def test_a_model_change_without_a_migration_is_detected(engine: Engine) -> None:
    upgrade(engine, migrations())
    changed = MetaData()
    for table in migrations().metadata.tables.values():
        table.to_metadata(changed)
    changed.tables["audit_event"].append_column(Column("added_later", String(10)))
    drift = schema_differences(engine, replace(migrations(), metadata=changed))
    assert [(op[0], op[3].name) for op in drift] == [("add_column", "added_later")]


def test_downgrade_to_base_removes_the_tables_and_upgrade_restores_them(engine: Engine) -> None:
    upgrade(engine, migrations())
    downgrade(engine, migrations(), "base")
    assert current(engine, migrations()) is None
    assert "audit_event" not in sqlalchemy.inspect(engine).get_table_names()
    upgrade(engine, migrations())
    assert "audit_event" in sqlalchemy.inspect(engine).get_table_names()


def test_upgrade_twice_is_harmless(engine: Engine) -> None:
    upgrade(engine, migrations())
    upgrade(engine, migrations())
    assert current(engine, migrations()) == head(migrations())


def test_a_foreign_table_in_a_shared_database_is_not_our_drift(engine: Engine) -> None:
    upgrade(engine, migrations())
    with engine.begin() as connection:
        connection.execute(sqlalchemy.text("CREATE TABLE another_service (x INTEGER)"))
    assert schema_differences(engine, migrations()) == []
