"""Migrations against SQLite and a real PostgreSQL: the migrated schema equals the models."""

from __future__ import annotations

import fcntl
import threading
from contextlib import ExitStack
from dataclasses import replace

import sqlalchemy
from sqlalchemy import Column, MetaData, String
from sqlalchemy.engine import Engine

from connector.database import migrations
from storage.engine import MIGRATION_LOCK_SUFFIX, sqlite_file
from storage.migrate import MIGRATION_LOCK, current, downgrade, head, upgrade
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


def test_a_migration_waits_for_another_process_migrating_the_same_database(
    engine: Engine,
) -> None:
    """Two processes migrating one new database at the same moment both found no version
    table: on PostgreSQL the loser failed on the catalogue (``pg_type_typname_nsp_index``), on
    SQLite half-way through the first's revisions ("duplicate column name"). Each migration now
    waits for the other's lock: here the test holds it, as another process would."""
    sqlite_path = sqlite_file(engine.url)
    with ExitStack() as held:
        if sqlite_path is None:
            holder = held.enter_context(engine.connect())
            holder.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK})
        else:
            handle = held.enter_context(open(sqlite_path + MIGRATION_LOCK_SUFFIX, "a"))
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        migrating = threading.Thread(target=upgrade, args=(engine, migrations()))
        migrating.start()
        migrating.join(timeout=1.5)
        assert migrating.is_alive()  # waiting for the lock
        assert current(engine, migrations()) is None
        if sqlite_path is None:
            holder.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK})
            holder.commit()
    migrating.join(timeout=60)
    assert not migrating.is_alive()
    assert current(engine, migrations()) == head(migrations())


def test_webhook_events_pending_at_the_upgrade_move_to_the_webhooks_own_order(
    engine: Engine,
) -> None:
    """Revision 0015 gives each receiver its own outbox order (``<process>#n``): a webhook
    event still pending under the process's own key moves to ``#0``; the process's protocol
    messages stay where they are; a downgrade moves it back."""
    upgrade(engine, migrations(), "9f4a6c8e0b3d")  # 0014, before the callbacks
    insert = sqlalchemy.text(
        "INSERT INTO outbox_message (process_id, kind, audience, url, body, status, attempts, "
        "next_attempt_at, created_at) VALUES (:p, :k, '', 'http://app/hook', '{}', :s, 0, "
        "'2026-12-01 00:00:00', '2026-12-01 00:00:00')"
    )
    rows = [("urn:uuid:p1", "webhook", "pending"), ("urn:uuid:p1", "negotiation.request",
            "pending"), ("urn:uuid:p2", "webhook", "sent")]  # fmt: skip
    with engine.begin() as connection:
        for process, kind, status in rows:
            connection.execute(insert, {"p": process, "k": kind, "s": status})
    keys = sqlalchemy.text("SELECT process_id, kind FROM outbox_message ORDER BY id")
    upgrade(engine, migrations())
    with engine.connect() as connection:
        assert [tuple(r) for r in connection.execute(keys)] == [
            ("urn:uuid:p1#0", "webhook"), ("urn:uuid:p1", "negotiation.request"),
            ("urn:uuid:p2", "webhook"),
        ]  # fmt: skip
    downgrade(engine, migrations(), "9f4a6c8e0b3d")
    with engine.connect() as connection:
        assert [r[0] for r in connection.execute(keys)] == ["urn:uuid:p1"] * 2 + ["urn:uuid:p2"]
