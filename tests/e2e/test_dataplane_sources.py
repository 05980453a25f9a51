"""The data plane's other sources and modes on loopback: SQL rows, a proxied HTTP backend (and
one that fails mid-stream), push to the consumer's endpoint, and duties after the transfer."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
from fastapi import FastAPI, Header, Request, Response
from fastapi.responses import StreamingResponse

from connector.contracts.client import DownloadInterruptedError
from dataspace.servers import bind, serve_in_thread
from tests.e2e.dataplane_helpers import (
    KEY,
    audit,
    bank_client,
    data_file,
    fetch,
    grant_for,
    offer_data,
    terms,
)
from tests.e2e.space import Space, start_space
from tests.e2e.test_negotiation import wait_for
from tests.e2e.test_transfer import bank_transfer, transfer
from tests.policy.policies import atom


@pytest.fixture
def sql_space(tmp_path: Path) -> Iterator[tuple[Space, int]]:
    database = tmp_path / "registry.db"
    with sqlite3.connect(database) as connection:
        connection.execute("CREATE TABLE firm (code TEXT, name TEXT, capital REAL)")
        connection.executemany(
            "INSERT INTO firm VALUES (?, ?, ?)",
            [(f"91440100{i:010d}", f"企业{i}", i * 1.5) for i in range(2500)],
        )
    with start_space(
        tmp_path, allow_list=True, bureau_sql={"registry": f"sqlite:///{database}"}
    ) as space:
        yield space, 2500


def offer_firms(space: Space) -> str:
    query = "SELECT code, name, capital FROM firm"
    return offer_data(space, {"type": "sql", "database": "registry", "query": query}, terms())


def test_sql_rows_stream_as_csv_or_json_lines_and_are_counted(
    sql_space: tuple[Space, int],
) -> None:
    space, rows = sql_space
    asset = offer_firms(space)
    grant = grant_for(space, asset)
    as_csv = fetch(grant)
    assert as_csv.status_code == 200
    assert as_csv.headers["content-type"].startswith("text/csv")
    lines = as_csv.text.splitlines()
    assert lines[0] == "code,name,capital"
    assert len(lines) == rows + 1
    assert lines[2] == "914401000000000001,企业1,1.5"
    as_jsonl = fetch(grant, Accept="application/jsonl")
    records = [json.loads(line) for line in as_jsonl.text.splitlines()]
    assert len(records) == rows
    assert records[1] == {"code": "914401000000000001", "name": "企业1", "capital": 1.5}
    # a Range on a query result is ignored (Accept-Ranges: none): the whole result comes
    ranged = fetch(grant, Range="bytes=0-9")
    assert (ranged.status_code, ranged.headers["accept-ranges"]) == (200, "none")
    wait_for(lambda: [e["rows_sent"] for e in audit(space) if e["action"] == "data access"]
             == [rows, rows, rows])  # fmt: skip


def test_the_sdk_counts_the_rows_it_received_as_the_provider_counted_them(
    sql_space: tuple[Space, int], tmp_path: Path
) -> None:
    """The bank's ``data received`` carries the rows its SDK counted, beside the rows the
    bureau's data plane says it sent: the reconciliation compares them (without the count,
    every query's flow showed a rows mismatch)."""
    space, rows = sql_space
    asset = offer_firms(space)
    grant = grant_for(space, asset)
    with bank_client(space) as client:
        got = client.download(grant, tmp_path / "firms.csv")
    assert got.rows == rows
    [received] = [e for e in audit(space, "bank") if e["action"] == "data received"]
    assert (received["rows_sent"], received["bytes_sent"]) == (rows, got.bytes)
    wait_for(lambda: [e["rows_sent"] for e in audit(space) if e["action"] == "data access"]
             == [rows])  # fmt: skip


def test_a_failing_query_is_a_clean_error_and_not_counted(sql_space: tuple[Space, int]) -> None:
    space, _ = sql_space
    asset = offer_data(
        space,
        {"type": "sql", "database": "registry", "query": "SELECT * FROM no_such_table"},
        terms(atom("count", "lteq", "1")),
    )
    grant = grant_for(space, asset)
    with pytest.raises(httpx.HTTPError):
        fetch(grant)
    failed = next(e for e in audit(space) if e["action"] == "data access")
    assert failed["reason"].startswith("failed: source_failed")
    assert failed["outcome"].value == "refused"


def backend(payload: bytes) -> FastAPI:
    """An HTTP backend of the data holder: ranges on /data, and a stream that breaks."""
    app = FastAPI()

    @app.get("/data")
    def data(range: Annotated[str | None, Header()] = None) -> Response:
        if range is None:
            return Response(payload, media_type="text/plain", headers={"Accept-Ranges": "bytes"})
        start, end = (int(x) for x in range.removeprefix("bytes=").split("-"))
        return Response(
            payload[start : end + 1],
            status_code=206,
            media_type="text/plain",
            headers={"Content-Range": f"bytes {start}-{end}/{len(payload)}"},
        )

    @app.get("/broken")
    def broken() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            yield payload[: len(payload) // 2]
            raise RuntimeError("the backend's disk failed")

        return StreamingResponse(chunks(), headers={"Content-Length": str(len(payload))})

    return app


@pytest.fixture
def backend_url() -> Iterator[tuple[str, bytes]]:
    payload = bytes(range(256)) * 4096
    sock = bind()
    with serve_in_thread(backend(payload), sock) as url:
        yield url, payload


def test_an_http_backend_is_proxied_with_ranges(
    space: Space, backend_url: tuple[str, bytes]
) -> None:
    url, payload = backend_url
    asset = offer_data(space, {"type": "http", "url": f"{url}/data"}, terms())
    grant = grant_for(space, asset)
    whole = fetch(grant)
    assert (whole.status_code, whole.content) == (200, payload)
    part = fetch(grant, Range="bytes=100-199")
    assert (part.status_code, part.content) == (206, payload[100:200])
    assert part.headers["content-range"] == f"bytes 100-199/{len(payload)}"


def test_a_backend_failing_mid_stream_is_a_clean_error_and_not_counted(
    space: Space, backend_url: tuple[str, bytes], tmp_path: Path
) -> None:
    url, _payload = backend_url
    asset = offer_data(
        space, {"type": "http", "url": f"{url}/broken"}, terms(atom("count", "lteq", "1"))
    )
    grant = grant_for(space, asset)
    with bank_client(space) as client, pytest.raises(DownloadInterruptedError):
        client.download(grant, tmp_path / "got.bin")
    assert not (tmp_path / "got.bin").exists()
    wait_for(lambda: any(
        e["action"] == "data access" and (e["reason"] or "").startswith("failed")
        for e in audit(space)
    ))  # fmt: skip
    # not counted: with count lteq 1 the transfer still runs and admits the next request
    # (which breaks the same way), where a counted use would have been refused (403)
    assert bank_transfer(space, grant.transfer_id)["state"] == "STARTED"
    with bank_client(space) as client, pytest.raises(DownloadInterruptedError):
        client.download(grant, tmp_path / "got.bin")


def inbox(received: list[tuple[dict[str, str], bytes]]) -> FastAPI:
    app = FastAPI()

    @app.post("/inbox")
    async def take(request: Request) -> dict[str, str]:
        received.append((dict(request.headers), await request.body()))
        return {}

    return app


def test_push_streams_to_the_consumers_endpoint_with_its_token(
    space: Space, tmp_path: Path
) -> None:
    source, _ = data_file(tmp_path, 2 * 1024 * 1024 + 5)
    asset = offer_data(space, {"type": "file", "path": str(source)}, terms())
    agreement = grant_for(space, asset).agreement_id
    received: list[tuple[dict[str, str], bytes]] = []
    sock = bind()
    with serve_in_thread(inbox(received), sock) as url:
        push_to = {
            "@type": "DataAddress",
            "endpointType": "https://w3id.org/idsa/v4.1/HTTP",
            "endpoint": f"{url}/inbox",
            "endpointProperties": [
                {"@type": "EndpointProperty", "name": "authorization",
                 "value": "the-banks-inbox-token"},
            ],
        }  # fmt: skip
        transfer_id = transfer(space, agreement, format="HttpData-PUSH", dataAddress=push_to)["id"]
        wait_for(lambda: bank_transfer(space, transfer_id)["state"] == "COMPLETED")
    ((headers, body),) = received
    assert headers["authorization"] == "Bearer the-banks-inbox-token"
    assert body == source.read_bytes()


def duties(base_url: str, role: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = httpx.get(
        f"{base_url}/management/v1/duties", headers=KEY, params={"role": role}
    ).json()["items"]
    return items


def test_a_deletion_receipt_fulfils_the_duty_on_both_sides(space: Space, tmp_path: Path) -> None:
    source, _ = data_file(tmp_path, 100)
    delete = [{"action": "delete", "constraint": [atom("elapsedTime", "lteq", "P30D")]}]
    asset = offer_data(space, {"type": "file", "path": str(source)}, terms(duty=delete))
    grant = grant_for(space, asset)
    with bank_client(space) as client:
        (owed,) = client.duties(grant.agreement_id)
        assert (owed["action"], owed["state"]) == ("delete", "pending")
        done = client.performed(owed["id"])
        assert done["state"] == "fulfilled"
    wait_for(
        lambda: [d["state"] for d in duties(space.bureau.base_url, "provider")] == ["fulfilled"]
    )
    (kept,) = duties(space.bureau.base_url, "provider")
    assert kept["receipt"] == done["receipt"]
    # the same receipt again, or a duty done twice, is refused
    with bank_client(space) as client, pytest.raises(Exception, match="duty_not_pending"):
        client.performed(owed["id"])


def test_an_overdue_duty_is_violated_on_both_sides_and_ends_the_transfer(
    space: Space, tmp_path: Path
) -> None:
    source, _ = data_file(tmp_path, 100)
    # due soon after the first download: the agreement and the transfer come first (a loaded
    # machine takes a few seconds for them), the download is allowed before the deadline
    due = (datetime.now(UTC) + timedelta(seconds=12)).isoformat()
    delete = [{"action": "delete", "constraint": [atom("dateTime", "lteq", due)]}]
    asset = offer_data(space, {"type": "file", "path": str(source)}, terms(duty=delete))
    grant = grant_for(space, asset)
    assert fetch(grant).status_code == 200
    assert datetime.now(UTC) < datetime.fromisoformat(due)  # else the test proves nothing
    wait_for(
        lambda: [d["state"] for d in duties(space.bank.base_url, "consumer")] == ["violated"],
        timeout_s=30,
    )
    wait_for(
        lambda: [d["state"] for d in duties(space.bureau.base_url, "provider")] == ["violated"]
    )
    wait_for(lambda: bank_transfer(space, grant.transfer_id)["state"] == "TERMINATED")
    ended = bank_transfer(space, grant.transfer_id)
    assert "duty" in ended["terminationReason"]
    assert fetch(grant).status_code in (401, 403)
