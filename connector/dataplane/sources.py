"""Where the data comes from: local files, HTTP backends (proxied, streamed) and SQL queries
(rows streamed as CSV or JSON Lines). Each source yields chunks; nothing holds the whole data.

Files and HTTP backends answer one HTTP byte range (RFC 9110 section 14); SQL results are
produced afresh on each request and are not addressable by range (``Accept-Ranges: none``: a
Range header is ignored and the whole result is sent, as the RFC allows).

Which addresses may be served is :class:`SourceRules`'s, checked when an asset is created and
again on every access (a file can be replaced by a symlink later): a file must resolve, symlinks
followed, inside a configured data root, be a regular file, not hidden (no component starting
with ``.``: ``.env``, ``.git``, ``.ssh``) and not one of the connector's own files (its
database, the SQLite files of its SQL sources, compared by inode so that a hard link does not
help); an HTTP backend must be on a configured source host and pass the outbound destination
policy. A consumer is told only that the source is unavailable; the operator's log says why.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import mimetypes
import os
import queue
import re
import stat
import threading
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Final

import anyio
import httpx
from sqlalchemy import text
from sqlalchemy.engine import Engine

from service.destinations import DestinationError, Destinations
from storage.engine import LOCK_SUFFIX, MIGRATION_LOCK_SUFFIX, parse_database_url, sqlite_file

log = logging.getLogger("kexin.dataplane")

CHUNK: Final = 1024 * 1024
SQL_BATCH: Final = 1000
_RANGE = re.compile(r"bytes=(\d{0,18})-(\d{0,18})")
"""One range, each bound at most 18 digits (larger offsets name no data anyone has)."""


class SourceError(Exception):
    """The data cannot be read or sent: ``status`` and ``code`` for the typed error."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class AddressError(ValueError):
    """A data address that the rules do not let this connector serve."""


UNAVAILABLE: Final = "the data source is unavailable"
_OPEN_FLAGS: Final = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


def sqlite_files(database_urls: Iterable[str]) -> tuple[Path, ...]:
    """The files of the SQLite databases among ``database_urls`` (with their journals)."""
    files: list[Path] = []
    for value in database_urls:
        database = sqlite_file(parse_database_url(value))
        if database is not None:
            main = Path(os.path.realpath(database))
            companions = ("-wal", "-shm", "-journal", LOCK_SUFFIX, MIGRATION_LOCK_SUFFIX)
            files += [main, *(main.with_name(main.name + s) for s in companions)]
    return tuple(files)


@dataclass(frozen=True)
class SourceRules:
    data_roots: tuple[Path, ...]
    """Directories file data addresses must resolve into; none: files are refused."""
    protected: tuple[Path, ...]
    """The connector's own files, never served even inside a root."""
    http_hosts: frozenset[str]
    """Hosts (``host`` or ``host:port``) HTTP data addresses may name; none: HTTP refused."""
    destinations: Destinations

    def file_path(self, path: str) -> Path:
        """The file a path names, symlinks followed, when it may be served."""
        if not os.path.isabs(path) or "\x00" in path:
            raise AddressError("a file path must be absolute")
        resolved = os.path.realpath(path)
        for root in self.data_roots:
            base = os.path.realpath(root)
            if os.path.commonpath([base, resolved]) == base:
                inside = Path(resolved).relative_to(base).parts
                if any(part.startswith(".") for part in inside):
                    raise AddressError("hidden files and folders are not served")
                break
        else:
            where = ", ".join(str(r) for r in self.data_roots) or "none configured"
            raise AddressError(f"a file must be inside a data root ({where})")
        if Path(resolved) in self.protected:
            raise AddressError("the connector's own files are never served")
        return Path(resolved)

    def open_file(self, path: str) -> BinaryIO:
        """The file opened for reading, checked again on what was opened: a regular file
        (no device, FIFO or directory), reached without a symlink at its last step, not one
        of the connector's own files by device and inode."""
        resolved = self.file_path(path)
        try:
            descriptor = os.open(resolved, _OPEN_FLAGS)
        except OSError as error:
            raise AddressError(f"the file cannot be opened: {error.strerror}") from None
        opened = os.fstat(descriptor)
        own = set()
        for protected in self.protected:
            try:
                info = os.stat(protected)
            except OSError:
                continue
            own.add((info.st_dev, info.st_ino))
        if not stat.S_ISREG(opened.st_mode) or (opened.st_dev, opened.st_ino) in own:
            os.close(descriptor)
            raise AddressError("not a regular file that may be served")
        return os.fdopen(descriptor, "rb")

    def http_url(self, url: str) -> str:
        """An HTTP backend's URL, when it is on a configured host and the destination
        policy admits it."""
        try:
            return str(self.destinations.http_source(url, self.http_hosts))
        except DestinationError as error:
            raise AddressError(str(error)) from None


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
    rules: SourceRules,
) -> Body:
    """Open the data an asset's data address names, ready to stream. Failures before the
    first byte raise :class:`SourceError`; failures while streaming raise from the chunks."""
    kind = address.get("type")
    try:
        if kind == "file":
            path = str(address["path"])
            return _file(rules.open_file(path), path, range_header)
        if kind == "http":
            return await _http(rules.http_url(str(address["url"])), range_header, client)
    except AddressError as error:
        log.warning("data address refused at access: %s", error)
        raise SourceError(502, "source_unavailable", UNAVAILABLE) from None
    if kind == "sql":
        engine = sql_engines.get(str(address["database"]))
        if engine is None:
            raise SourceError(502, "source_unavailable", "the SQL source is not configured")
        jsonl = accept is not None and (
            "application/jsonl" in accept or "application/x-ndjson" in accept
        )
        return _sql(engine, str(address["query"]), jsonl)
    raise SourceError(502, "source_unavailable", f"unknown data address type {kind!r}")


def _file(handle: BinaryIO, path: str, range_header: str | None) -> Body:
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


HEAD_DEADLINE_S: Final = 30.0
"""How long an HTTP backend may take, in all, to answer with its status and headers (the body
then streams through in bounded chunks, each read under the client's timeout)."""


async def _http(url: str, range_header: str | None, client: httpx.AsyncClient) -> Body:
    range_header = None if range_header is None else one_range(range_header)
    headers = {"Range": range_header} if range_header else {}
    request = client.build_request("GET", url, headers=headers)
    try:
        # a total deadline until the answer's head: per-read timeouts alone let a backend
        # that drips its headers hold the access (and a connection) for as long as it likes
        with anyio.fail_after(HEAD_DEADLINE_S):
            response = await client.send(request, stream=True, follow_redirects=False)
    except (httpx.HTTPError, TimeoutError) as error:
        log.warning("HTTP source %s unreachable: %r", url, error)
        raise SourceError(502, "source_unavailable", UNAVAILABLE) from None
    if response.status_code == 416:
        await response.aclose()
        raise SourceError(416, "range_not_satisfiable", f"{range_header}: beyond the data")
    if response.status_code not in (200, 206):
        await response.aclose()
        log.warning("HTTP source %s answered %s", url, response.status_code)
        raise SourceError(502, "source_unavailable", UNAVAILABLE)

    async def chunks() -> AsyncIterator[bytes]:
        try:
            async for chunk in response.aiter_raw(CHUNK):
                yield chunk
        except httpx.HTTPError as error:
            log.warning("HTTP source %s failed mid-stream: %r", url, error)
            raise SourceError(502, "source_failed", "the data source failed") from None

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


ROWS_HEADER: Final = "Kexin-Rows"
"""Sent with a stream of rows (CSV with its header line, or JSON Lines) whose rows the data
plane counts: the consumer's SDK counts them too, for the regulator's reconciliation. Other
bodies (files, HTTP backends) are bytes to both sides."""


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
        {"Accept-Ranges": "none", ROWS_HEADER: "counted"},
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
