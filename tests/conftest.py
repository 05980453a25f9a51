"""Shared fixtures: a database URL for each back end (SQLite file, real PostgreSQL)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from storage.engine import create_engine
from tests import postgres


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    bindir = postgres.find_bindir()
    if bindir is None:
        if os.environ.get("KEXIN_REQUIRE_POSTGRES") == "1":
            pytest.fail("PostgreSQL server binaries not found (make test installs them)")
        pytest.skip("PostgreSQL server binaries not found; run `make test` to install them")
    with postgres.cluster(bindir) as url:
        yield url


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database on each back end."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    admin_url: str = request.getfixturevalue("postgres_admin_url")
    return postgres.create_database(admin_url, f"test_{uuid.uuid4().hex[:12]}")


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on a fresh database of each back end, disposed afterwards."""
    built = create_engine(database_url)
    yield built
    built.dispose()
