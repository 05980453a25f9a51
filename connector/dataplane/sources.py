"""Where the data comes from: local files, HTTP backends (proxied, streamed) and SQL queries
(rows streamed as CSV or JSON Lines). Each source yields chunks; nothing holds the whole data.

Files and HTTP backends answer one HTTP byte range (RFC 9110 section 14); SQL results are
produced afresh on each request and are not addressable by range (``Accept-Ranges: none``: a
Range header is ignored and the whole result is sent, as the RFC allows).
"""

from __future__ import annotations

import csv
import io
import json
import mimetypes
import os
import queue
import re
import threading
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import anyio
import httpx
from sqlalchemy import text
from sqlalchemy.engine import Engine

CHUNK: Final = 1024 * 1024
SQL_BATCH: Final = 1000
_RANGE = re.compile(r"bytes=(\d{0,18})-(\d{0,18})")
"""One range, each bound at most 18 digits (larger offsets name no data anyone has)."""


class SourceError(Exception):
    """The data cannot be read or sent: ``status`` and ``code`` for the typed error."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int
    """Inclusive, as in Content-Range."""

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    def header(self) -> str:
        return f"bytes={self.start}-{self.end}"


def parse_range(value: str | None, size: int) -> ByteRange | None:
    """One byte range of a representation of ``size`` bytes; None when there is no Range.
    Several ranges, other units or bad syntax: 400; a range beyond the data: 416."""
    if value is None:
        return None
    match = _RANGE.fullmatch(value.strip())
    if match is None or match.group(1) == match.group(2) == "":
        raise SourceError(400, "invalid_range", f"Range {value[:100]!r}: one bytes=a-b range only")
    first, last = match.group(1), match.group(2)
    if first == "":  # the last N bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise SourceError(416, "range_not_satisfiable", f"{value} of {size} bytes")
        return ByteRange(max(0, size - suffix), size - 1)
    start = int(first)
    end = size - 1 if last == "" else min(int(last), size - 1)
    if last != "" and int(last) < start:
        raise SourceError(400, "invalid_range", f"Range {value}: the end is before the start")
    if start >= size:
        raise SourceError(416, "range_not_satisfiable", f"{value} of {size} bytes")
    return ByteRange(start, end)


@dataclass
class Body:
    """What goes out: status, headers, and the chunks (read lazily)."""

    status: int
    media_type: str
    chunks: AsyncIterator[bytes]
    length: int | None
    headers: dict[str, str] = field(default_factory=dict)
    byte_range: ByteRange | None = None
    rows: int | None = None
    """SQL sources: rows sent so far (updated while streaming)."""
    closers: list[Any] = field(default_factory=list)

    async def aclose(self) -> None:
        for closer in self.closers:
            await closer()


async def open_source(
    address: Mapping[str, Any],
    *,
    range_header: str | None,
    accept: str | None,
    sql_engines: Mapping[str, Engine],
    client: httpx.AsyncClient,
) -> Body:
    """Open the data an asset's data address names, ready to stream. Failures before the
    first byte raise :class:`SourceError`; failures while streaming raise from the chunks."""
    kind = address.get("type")
    if kind == "file":
        return _file(str(address["path"]), range_header)
    if kind == "http":
        return await _http(str(address["url"]), range_header, client)
    if kind == "sql":
        engine = sql_engines.get(str(address["database"]))
        if engine is None:
            raise SourceError(502, "source_unavailable", "the SQL source is not configured")
        jsonl = accept is not None and (
            "application/jsonl" in accept or "application/x-ndjson" in accept
        )
        return _sql(engine, str(address["query"]), jsonl)
    raise SourceError(502, "source_unavailable", f"unknown data address type {kind!r}")


def _file(path: str, range_header: str | None) -> Body:
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed when the body is closed
    except OSError as error:
        raise SourceError(
            502, "source_unavailable", f"the file cannot be read: {error.strerror}"
        ) from None
    size = os.fstat(handle.fileno()).st_size
    try:
        byte_range = parse_range(range_header, size)
    except SourceError:
        handle.close()
        raise
    start, length = (byte_range.start, byte_range.length) if byte_range else (0, size)
    handle.seek(start)

    async def chunks() -> AsyncIterator[bytes]:
        left = length
        while left > 0:
            chunk = await anyio.to_thread.run_sync(handle.read, min(CHUNK, left))
            if not chunk:
                raise SourceError(502, "source_failed", "the file is shorter than it was")
            left -= len(chunk)
            yield chunk

    async def close() -> None:
        handle.close()

    media_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
    headers = {"Accept-Ranges": "bytes"}
    if byte_range is not None:
        headers["Content-Range"] = f"bytes {byte_range.start}-{byte_range.end}/{size}"
    return Body(
        206 if byte_range else 200, media_type, chunks(), length, headers, byte_range,
        closers=[close],
    )  # fmt: skip


def one_range(value: str) -> str:
    """The Range header passed to an HTTP backend: one ``bytes=a-b`` range, as we promise,
    never several ranges or anything else verbatim."""
    match = _RANGE.fullmatch(value.strip())
    if match is None or match.group(1) == match.group(2) == "":
        raise SourceError(400, "invalid_range", f"Range {value[:100]!r}: one bytes=a-b range only")
    first, last = match.group(1), match.group(2)
    if first and last and int(last) < int(first):
        raise SourceError(400, "invalid_range", f"Range {value}: the end is before the start")
    return f"bytes={first}-{last}"


async def _http(url: str, range_header: str | None, client: httpx.AsyncClient) -> Body:
    range_header = None if range_header is None else one_range(range_header)
    headers = {"Range": range_header} if range_header else {}
    request = client.build_request("GET", url, headers=headers)
    try:
        response = await client.send(request, stream=True, follow_redirects=False)
    except httpx.HTTPError as error:
        raise SourceError(
            502, "source_unavailable", f"the backend cannot be reached: {error!r}"
        ) from None
    if response.status_code == 416:
        await response.aclose()
        raise SourceError(416, "range_not_satisfiable", f"{range_header}: beyond the data")
    if response.status_code not in (200, 206):
        await response.aclose()
        raise SourceError(502, "source_unavailable", f"the backend answered {response.status_code}")

    async def chunks() -> AsyncIterator[bytes]:
        try:
            async for chunk in response.aiter_raw(CHUNK):
                yield chunk
        except httpx.HTTPError as error:
            raise SourceError(502, "source_failed", f"the backend failed: {error!r}") from None

    relayed = {"Accept-Ranges": response.headers.get("accept-ranges", "none")}
    for name in ("content-range", "content-encoding"):
        if name in response.headers:
            relayed[name.title()] = response.headers[name]
    length = response.headers.get("content-length")
    byte_range = None
    if response.status_code == 206 and range_header:
        match = re.fullmatch(r"bytes (\d+)-(\d+)/.*", response.headers.get("content-range", ""))
        byte_range = ByteRange(int(match.group(1)), int(match.group(2))) if match else None
    return Body(
        response.status_code,
        response.headers.get("content-type", "application/octet-stream"),
        chunks(),
        int(length) if length and length.isdigit() else None,
        relayed,
        byte_range,
        closers=[response.aclose],
    )


_END: Final = object()


def _sql(engine: Engine, query: str, jsonl: bool) -> Body:
    """Rows are read by one thread (a database connection stays in its thread) into a small
    queue, so the event loop never waits on the database and memory stays bounded."""
    chunks_queue: queue.Queue[object] = queue.Queue(maxsize=4)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                chunks_queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in _encode(engine, query, jsonl):
                if not put(item):
                    return
            put(_END)
        except Exception as error:
            put(SourceError(502, "source_failed", f"the query failed: {error}"))

    async def count_rows() -> AsyncIterator[bytes]:
        async for data, rows in _drain(chunks_queue):
            body.rows = (body.rows or 0) + rows
            yield data

    async def close() -> None:
        stop.set()

    body = Body(
        200,
        "application/jsonl" if jsonl else "text/csv; charset=utf-8",
        count_rows(),
        None,
        {"Accept-Ranges": "none"},
        rows=0,
        closers=[close],
    )
    threading.Thread(target=produce, name="sql-source", daemon=True).start()
    return body


async def _drain(chunks_queue: queue.Queue[object]) -> AsyncIterator[Any]:
    def get() -> object:
        try:
            return chunks_queue.get(timeout=0.5)
        except queue.Empty:
            return None

    while True:
        item = await anyio.to_thread.run_sync(get)
        if item is None:
            continue
        if item is _END:
            return
        if isinstance(item, SourceError):
            raise item
        yield item


def _encode(engine: Engine, query: str, jsonl: bool) -> Iterator[tuple[bytes, int]]:
    with engine.connect() as connection:
        result = connection.execution_options(stream_results=True).execute(text(query))
        names = list(result.keys())
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        if not jsonl:
            writer.writerow(names)
        while True:
            rows = result.fetchmany(SQL_BATCH)
            if not rows:
                break
            for row in rows:
                if jsonl:
                    record = dict(zip(names, row, strict=True))
                    buffer.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
                else:
                    writer.writerow(row)
            yield buffer.getvalue().encode(), len(rows)
            buffer.seek(0)
            buffer.truncate()
        if not jsonl and buffer.getvalue():
            yield buffer.getvalue().encode(), 0
