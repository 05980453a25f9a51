"""``migrations()`` of each schema must register every table of that schema by itself; otherwise
the drift check (migrated schema == models) cannot see a table that no migration creates."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent

SCRIPT = """
import importlib, pkgutil, sys
module, base, package = sys.argv[1:4]
schema = importlib.import_module(module)
alone = sorted(schema.migrations().metadata.tables)
for info in pkgutil.walk_packages(importlib.import_module(package).__path__, package + "."):
    if ".migrations" not in info.name:
        importlib.import_module(info.name)
everything = sorted(getattr(schema, base).metadata.tables)
print(alone == everything, alone, everything)
"""


@pytest.mark.parametrize(
    ("module", "base", "package"),
    [
        ("connector.database", "ConnectorBase", "connector"),
        ("broker.database", "BrokerBase", "broker"),
        ("identity.database", "IdentityBase", "identity"),
    ],
)
def test_migrations_register_every_table_of_their_schema(
    module: str, base: str, package: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, module, base, package],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.startswith("True"), result.stdout
