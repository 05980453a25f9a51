"""Byte ranges and the local sources, without servers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from connector.dataplane.sources import (
    ByteRange,
    SourceError,
    SourceRules,
    open_source,
    parse_range,
)
from service.destinations import Destinations
from storage.engine import create_engine


def rules(*roots: Path, hosts: tuple[str, ...] = ()) -> SourceRules:
    return SourceRules(
        data_roots=roots, protected=(), http_hosts=frozenset(hosts), destinations=Destinations()
    )


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-9", ByteRange(0, 9)),
        ("bytes=10-", ByteRange(10, 99)),
        ("bytes=-5", ByteRange(95, 99)),
        ("bytes=-500", ByteRange(0, 99)),
        ("bytes=90-1000", ByteRange(90, 99)),
        (" bytes=99-99 ", ByteRange(99, 99)),
    ],
)
def test_one_satisfiable_range(header: str | None, expected: ByteRange | None) -> None:
    assert parse_range(header, 100) == expected


@pytest.mark.parametrize(
    ("header", "status"),
    [
        ("bytes=100-", 416),
        ("bytes=-0", 416),
        ("bytes=5-2", 400),
        ("bytes=0-1,4-5", 400),
        ("items=0-1", 400),
        ("bytes=-", 400),
        ("bytes=a-b", 400),
        pytest.param("bytes=0-" + "9" * 5000, 400, id="a bound of 5000 digits"),
        pytest.param("bytes=" + "1" * 19 + "-", 400, id="19 digits"),
    ],
)
def test_bad_or_unsatisfiable_ranges(header: str, status: int) -> None:
    with pytest.raises(SourceError) as refused:
        parse_range(header, 100)
    assert refused.value.status == status


def test_an_empty_file_has_no_satisfiable_range() -> None:
    with pytest.raises(SourceError):
        parse_range("bytes=-1", 0)


async def _read(
    address: Mapping[str, object], root: Path, **kwargs: object
) -> tuple[int, bytes, object]:
    async with httpx.AsyncClient() as client:
        body = await open_source(
            address, range_header=kwargs.get("range_header"),  # type: ignore[arg-type]
            accept=kwargs.get("accept"), sql_engines=kwargs.get("engines", {}),  # type: ignore[arg-type]
            client=client, rules=rules(root),
        )  # fmt: skip
        try:
            data = b"".join([chunk async for chunk in body.chunks])
        finally:
            await body.aclose()
        return body.status, data, body.rows


def test_a_file_is_read_in_chunks_and_by_range(tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    payload = bytes(range(256)) * 9000  # a little over 2 MiB: three chunks
    path.write_bytes(payload)
    assert asyncio.run(_read({"type": "file", "path": str(path)}, tmp_path))[:2] == (200, payload)
    status, data, _ = asyncio.run(
        _read({"type": "file", "path": str(path)}, tmp_path, range_header="bytes=1048570-1048580")
    )
    assert (status, data) == (206, payload[1048570:1048581])


def test_a_missing_file_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError) as refused:
        asyncio.run(_read({"type": "file", "path": str(tmp_path / "nope")}, tmp_path))
    assert (refused.value.status, refused.value.code) == (502, "source_unavailable")


def test_sql_rows_in_both_formats_count_rows(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'rows.db'}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (a INTEGER, b TEXT)"))
        connection.execute(
            text("INSERT INTO t VALUES (:a, :b)"), [{"a": i, "b": f"x,{i}"} for i in range(2345)]
        )
    address = {"type": "sql", "database": "db", "query": "SELECT a, b FROM t ORDER BY a"}
    try:
        status, data, rows = asyncio.run(_read(address, tmp_path, engines={"db": engine}))
        lines = data.decode().splitlines()
        assert (status, rows, lines[0], lines[1]) == (200, 2345, "a,b", '0,"x,0"')
        _, data, rows = asyncio.run(
            _read(address, tmp_path, engines={"db": engine}, accept="application/jsonl")
        )
        records = [json.loads(line) for line in data.decode().splitlines()]
        assert (rows, records[-1]) == (2345, {"a": 2344, "b": "x,2344"})
        with pytest.raises(SourceError):
            asyncio.run(_read(address, tmp_path, engines={}))
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    "header",
    ["bytes=0-1,4-5", "bytes=0-" + "9" * 5000, "items=0-1", "bytes=5-2", "bytes=-"],
)
def test_an_http_backend_gets_one_range_or_nothing(header: str) -> None:
    seen: list[str | None] = []

    def backend(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("range"))
        return httpx.Response(206, content=b"ab", headers={"content-range": "bytes 0-1/10"})

    async def go() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(backend)) as client:
            await open_source(
                {"type": "http", "url": "https://backend.test/data"}, range_header=header,
                accept=None, sql_engines={}, client=client, rules=rules(hosts=("backend.test",)),
            )  # fmt: skip

    with pytest.raises(SourceError) as refused:
        asyncio.run(go())
    assert refused.value.status == 400
    assert seen == []


def test_an_http_backend_gets_the_one_range_asked_for() -> None:
    seen: list[str | None] = []

    def backend(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("range"))
        return httpx.Response(206, content=b"ab", headers={"content-range": "bytes 0-1/10"})

    async def go() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(backend)) as client:
            body = await open_source(
                {"type": "http", "url": "https://backend.test/data"}, range_header=" bytes=0-1",
                accept=None, sql_engines={}, client=client, rules=rules(hosts=("backend.test",)),
            )  # fmt: skip
            await body.aclose()

    asyncio.run(go())
    assert seen == ["bytes=0-1"]


def test_an_http_backend_that_never_answers_its_head_is_unavailable_by_the_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Per-read timeouts reset with every byte: a backend dripping its headers would hold the
    access for as long as it likes without a total deadline on the head."""
    import connector.dataplane.sources as sources

    monkeypatch.setattr(sources, "HEAD_DEADLINE_S", 0.2)

    async def backend(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(30)  # stands for a head that drips in for ever
        return httpx.Response(200, content=b"late")

    async def go() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(backend)) as client:
            await asyncio.wait_for(open_source(
                {"type": "http", "url": "https://backend.test/data"}, range_header=None,
                accept=None, sql_engines={}, client=client, rules=rules(hosts=("backend.test",)),
            ), 5)  # fmt: skip

    with pytest.raises(SourceError) as refused:
        asyncio.run(go())
    assert (refused.value.status, refused.value.code) == (502, "source_unavailable")
