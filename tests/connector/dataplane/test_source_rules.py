"""Which data addresses the data plane serves, checked on every access: files inside the data
roots only (symlinks followed, swapped ones too), never the connector's own database (not even
through a hard link), no hidden files, no devices or FIFOs; HTTP backends on configured hosts."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import httpx
import pytest

from connector.dataplane.sources import (
    AddressError,
    SourceError,
    SourceRules,
    open_source,
    sqlite_files,
)
from service.destinations import Destinations


def rules(root: Path, *, database: Path | None = None, hosts: tuple[str, ...] = ()) -> SourceRules:
    own = sqlite_files([f"sqlite:///{database}"]) if database else ()
    return SourceRules(
        data_roots=(root,), protected=own, http_hosts=frozenset(hosts), destinations=Destinations()
    )


def read(path: Path | str, with_rules: SourceRules) -> bytes:
    async def go() -> bytes:
        async with httpx.AsyncClient() as client:
            body = await open_source(
                {"type": "file", "path": str(path)}, range_header=None, accept=None,
                sql_engines={}, client=client, rules=with_rules,
            )  # fmt: skip
            try:
                return b"".join([chunk async for chunk in body.chunks])
            finally:
                await body.aclose()

    return asyncio.run(go())


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "firms.csv").write_text("code,name\n")
    return folder


def refused_at_access(path: Path | str, with_rules: SourceRules) -> None:
    with pytest.raises(SourceError) as refused:
        read(path, with_rules)
    assert (refused.value.status, refused.value.code) == (502, "source_unavailable")
    assert refused.value.message == "the data source is unavailable"  # nothing of why


def test_a_file_inside_a_root_is_served(root: Path) -> None:
    assert read(root / "firms.csv", rules(root)) == b"code,name\n"


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/etc/passwd", id="outside"),
        pytest.param("{root}/../../../../etc/passwd", id="dot-dot"),
        pytest.param("{root}/.env", id="hidden file"),
        pytest.param("{root}/.git/config", id="hidden folder"),
        pytest.param("firms.csv", id="relative"),
    ],
)
def test_paths_outside_the_roots_are_refused(root: Path, path: str) -> None:
    (root / ".env").write_text("CONNECTOR_KEY_PASSPHRASE=secret\n")
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("[core]\n")
    named = path.format(root=root)
    with pytest.raises(AddressError):
        rules(root).file_path(named)
    refused_at_access(named, rules(root))


def test_a_symlink_out_of_the_root_is_refused(root: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("not data")
    (root / "link.csv").symlink_to(secret)
    with pytest.raises(AddressError, match="inside a data root"):
        rules(root).file_path(str(root / "link.csv"))
    refused_at_access(root / "link.csv", rules(root))


def test_a_file_swapped_for_a_symlink_after_creation_is_refused(root: Path, tmp_path: Path) -> None:
    database = tmp_path / "connector.db"
    database.write_bytes(b"SQLite format 3\x00 encrypted keys, outbox")
    served = root / "firms.csv"
    with_rules = rules(root, database=database)
    assert read(served, with_rules)  # fine when the asset was created
    served.unlink()
    served.symlink_to(database)
    refused_at_access(served, with_rules)
    served.unlink()
    served.symlink_to("/etc/passwd")
    refused_at_access(served, with_rules)


def test_the_connectors_own_database_is_never_served(tmp_path: Path) -> None:
    """Even when the data root is the folder the database is in, and through a hard link."""
    database = tmp_path / "connector.db"
    database.write_bytes(b"SQLite format 3\x00")
    (tmp_path / "connector.db-wal").write_bytes(b"wal")
    with_rules = rules(tmp_path, database=database)
    for own in (database, tmp_path / "connector.db-wal"):
        with pytest.raises(AddressError, match="own files"):
            with_rules.file_path(str(own))
        refused_at_access(own, with_rules)
    linked = tmp_path / "innocent.csv"
    os.link(database, linked)
    assert with_rules.file_path(str(linked)) == linked  # the path alone cannot tell
    with pytest.raises(AddressError, match="regular file that may be served"):
        with_rules.open_file(str(linked))
    refused_at_access(linked, with_rules)


def test_a_fifo_or_a_folder_is_not_a_file_to_serve(root: Path) -> None:
    os.mkfifo(root / "pipe")
    (root / "folder").mkdir()
    for name in ("pipe", "folder"):
        refused_at_access(root / name, rules(root))  # and it does not block on the FIFO


def test_without_a_data_root_no_file_is_served(root: Path) -> None:
    nothing = SourceRules(
        data_roots=(), protected=(), http_hosts=frozenset(), destinations=Destinations()
    )
    with pytest.raises(AddressError, match="none configured"):
        nothing.file_path(str(root / "firms.csv"))
    refused_at_access(root / "firms.csv", nothing)


def test_an_http_backend_must_be_on_a_configured_host(root: Path) -> None:
    asked: list[str] = []

    def backend(request: httpx.Request) -> httpx.Response:
        asked.append(str(request.url))
        return httpx.Response(200, content=b"secret admin data")

    async def go(url: str, hosts: tuple[str, ...]) -> int:
        async with httpx.AsyncClient(transport=httpx.MockTransport(backend)) as client:
            body = await open_source(
                {"type": "http", "url": url}, range_header=None, accept=None, sql_engines={},
                client=client, rules=rules(root, hosts=hosts),
            )  # fmt: skip
            await body.aclose()
            return body.status

    assert asyncio.run(go("https://warehouse.example.cn/firms", ("warehouse.example.cn",))) == 200
    for url, hosts in (
        ("https://broker.example.cn/admin/credentials", ("warehouse.example.cn",)),
        ("https://127.0.0.1:8282/admin/credentials", ("127.0.0.1",)),  # loopback: not allowed
        ("https://169.254.169.254/latest/meta-data", ()),
    ):
        with pytest.raises(SourceError) as refused:
            asyncio.run(go(url, hosts))
        assert refused.value.message == "the data source is unavailable"
    assert asked == ["https://warehouse.example.cn/firms"]


def test_a_failing_backend_is_not_described_to_the_consumer(root: Path) -> None:
    def backend(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/down":
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        return httpx.Response(503, content=b"internal: db01.corp is down")

    async def go(path: str) -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(backend)) as client:
            await open_source(
                {"type": "http", "url": f"https://warehouse.example.cn{path}"}, range_header=None,
                accept=None, sql_engines={}, client=client,
                rules=rules(root, hosts=("warehouse.example.cn",)),
            )  # fmt: skip

    messages = set()
    for path in ("/down", "/sick"):
        with pytest.raises(SourceError) as refused:
            asyncio.run(go(path))
        messages.add((refused.value.status, refused.value.code, refused.value.message))
    assert messages == {(502, "source_unavailable", "the data source is unavailable")}
