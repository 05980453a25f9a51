"""Shared fixtures: a database URL for each back end (SQLite file, real PostgreSQL)."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.dependencies import models as fastapi_models
from sqlalchemy.engine import Engine

from storage.engine import create_engine
from tests import postgres

TEST_SCRYPT_LOG2_N = "15"


@pytest.fixture(autouse=True, scope="session")
def key_wrapping_at_the_floor() -> Iterator[None]:
    """Services started by the tests wrap their keys with scrypt at the settings' floor
    (N=2^15, about 0.1 s) rather than the default (OWASP's N=2^17, about 0.5 s): the suite
    starts hundreds of them on fresh databases. Servers in subprocesses inherit it."""
    with pytest.MonkeyPatch.context() as patch:
        for prefix in ("CONNECTOR", "BROKER", "LEDGER"):
            patch.setenv(f"{prefix}_KEY_SCRYPT_LOG2_N", TEST_SCRYPT_LOG2_N)
        yield


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


RECURSION_LIMIT = sys.getrecursionlimit()


@pytest.fixture(autouse=True)
def _recursion_limit_unchanged() -> Iterator[None]:
    """Nothing may leave the interpreter's recursion limit raised: py-evm and py_ecc raise it
    to 100,000 on import (ledger.chain puts it back), and with such a limit deeply nested input
    overflows the C stack and kills the process (a policy test crashed pytest so) instead of
    raising RecursionError."""
    yield
    now = sys.getrecursionlimit()
    if now != RECURSION_LIMIT:
        sys.setrecursionlimit(RECURSION_LIMIT)
        pytest.fail(f"the recursion limit was left at {now} (it was {RECURSION_LIMIT})")


_FASTAPI_CACHES = tuple(
    cache
    for name in (
        "_is_gen_callable_cached",
        "_is_async_gen_callable_cached",
        "_is_coroutine_callable_cached",
    )
    if (cache := getattr(fastapi_models, name, None)) is not None
)


@pytest.fixture(autouse=True)
def _apps_freed() -> Iterator[None]:
    """FastAPI keeps the last 4,096 endpoint and dependency callables it classified (sync,
    coroutine, generator) in three LRU caches; our endpoints are closures of their app, so
    those caches kept hundreds of the suite's apps alive (their pydantic models with them):
    the test process grew to several GB, and its full garbage collections, seconds long,
    froze the servers the tests run in threads until their clients timed out. A service
    builds one app, for which the caches are bounded and right; here each test's apps go
    with it."""
    yield
    for cache in _FASTAPI_CACHES:
        cache.cache_clear()
