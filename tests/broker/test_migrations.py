"""The broker's migrations against SQLite and a real PostgreSQL: the migrated schema equals the
models, and a downgrade to the start removes what they made."""

from __future__ import annotations

import sqlalchemy
from sqlalchemy.engine import Engine

from broker.database import migrations
from storage.migrate import current, differences, downgrade, head, upgrade


def test_migrated_schema_equals_the_models(engine: Engine) -> None:
    upgrade(engine, migrations())
    assert current(engine, migrations()) == head(migrations())
    assert differences(engine, migrations()) == []


def test_downgrade_to_base_and_upgrade_again(engine: Engine) -> None:
    upgrade(engine, migrations())
    downgrade(engine, migrations(), "base")
    assert "registered_participant" not in sqlalchemy.inspect(engine).get_table_names()
    upgrade(engine, migrations())
    assert "registered_participant" in sqlalchemy.inspect(engine).get_table_names()
