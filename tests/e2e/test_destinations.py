"""The attack run's SSRF through the data plane, on loopback: a push goes only to the consumer's
own host, never with a raw Authorization header of the consumer's choosing, and the consumer
learns nothing of the endpoint's answer; a file swapped for a symlink to the connector's own
database after the asset was created is not served."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response

from dataspace.servers import bind, serve_in_thread
from tests.e2e.dataplane_helpers import data_file, fetch, grant_for, offer_data, terms
from tests.e2e.space import Space, call
from tests.e2e.test_negotiation import wait_for
from tests.e2e.test_transfer import bank_transfer, bureau_transfers, transfer

DSP = "https://w3id.org/dspace/2025/1/context.jsonld"
HTTP = "https://w3id.org/idsa/v4.1/HTTP"


def sink(received: list[tuple[dict[str, str], bytes]], status: int = 200) -> FastAPI:
    """An endpoint that records what it is sent and answers ``status``, with a body that must
    not reach the consumer."""
    app = FastAPI()

    @app.post("/inbox")
    async def take(request: Request) -> Response:
        received.append((dict(request.headers), await request.body()))
        return Response(b"internal: admin console of db01.corp", status_code=status)

    return app


@pytest.fixture
def recorded() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    received: list[tuple[dict[str, str], bytes]] = []
    with serve_in_thread(sink(received), bind()) as url:
        yield url, received


def push_address(endpoint: str, *properties: tuple[str, str]) -> dict[str, Any]:
    return {
        "@type": "DataAddress",
        "endpointType": HTTP,
        "endpoint": endpoint,
        "endpointProperties": [
            {"@type": "EndpointProperty", "name": name, "value": value}
            for name, value in properties
        ],
    }


def push_request(space: Space, agreement: str, address: dict[str, Any]) -> httpx.Response:
    """The bank's own TransferRequestMessage for a push, as a raw DSP call."""
    message = {
        "@context": [DSP],
        "@type": "TransferRequestMessage",
        "consumerPid": f"urn:uuid:{uuid.uuid4()}",
        "agreementId": agreement,
        "format": "HttpData-PUSH",
        "dataAddress": address,
        "callbackAddress": f"{space.bank.base_url}/dsp/callback",
    }
    url = f"{space.bureau.base_url}/dsp/transfers/request"
    bureau = space.bureau.participant_id
    return asyncio.run(call(space.bank, bureau, url, method="POST", body=message))


def agreement_for_a_file(space: Space, tmp_path: Path) -> str:
    source, _ = data_file(tmp_path, 1000)
    asset = offer_data(space, {"type": "file", "path": str(source)}, terms())
    return grant_for(space, asset).agreement_id


@pytest.mark.parametrize(
    ("endpoint", "properties"),
    [
        pytest.param("http://localhost:{port}/inbox", (), id="another host than its DID's"),
        pytest.param("http://169.254.169.254/latest/meta-data", (), id="cloud metadata"),
        pytest.param(
            "{url}/inbox",
            (("authorization", "admin:admin"), ("authType", "Basic")),
            id="a raw Authorization scheme",
        ),
        pytest.param(
            "{url}/inbox", (("authorization", "t\r\nX-Admin: yes"),), id="a header injected"
        ),
        pytest.param("{url}/inbox", (("authorization", "t"), ("authType", "")), id="no type"),
    ],
)
def test_a_push_address_that_is_not_the_consumers_own_is_refused(
    space: Space,
    tmp_path: Path,
    recorded: tuple[str, list[tuple[dict[str, str], bytes]]],
    endpoint: str,
    properties: tuple[tuple[str, str], ...],
) -> None:
    url, received = recorded
    agreement = agreement_for_a_file(space, tmp_path)
    before = len(bureau_transfers(space))
    port = url.rsplit(":", 1)[1]
    address = push_address(endpoint.format(url=url, port=port), *properties)
    refused = push_request(space, agreement, address)
    assert refused.status_code == 400, refused.text
    assert (refused.json()["@type"], refused.json()["code"]) == (
        "TransferError",
        "invalid_push_address",
    )
    assert len(bureau_transfers(space)) == before  # no process was created
    assert received == []


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_the_endpoints_answer_is_not_reflected_to_the_consumer(
    space: Space, tmp_path: Path
) -> None:
    """An endpoint answering 500 with a body, and one that is not there at all: the consumer
    reads the same termination reason, with nothing of either in it."""
    agreement = agreement_for_a_file(space, tmp_path)
    received: list[tuple[dict[str, str], bytes]] = []
    reasons = []
    with serve_in_thread(sink(received, status=500), bind()) as url:
        for endpoint in (f"{url}/inbox", f"http://127.0.0.1:{closed_port()}/inbox"):
            address = push_address(endpoint, ("authorization", "the-banks-inbox-token"))
            transfer_id = transfer(space, agreement, format="HttpData-PUSH", dataAddress=address)[
                "id"
            ]
            wait_for(lambda: bank_transfer(space, transfer_id)["state"] == "TERMINATED")  # noqa: B023
            ended = bank_transfer(space, transfer_id)
            assert ended["terminationCode"] == "push_failed"
            reasons.append(ended["terminationReason"])
    assert len(received) == 1  # the first endpoint was reached, with the bearer token
    assert received[0][0]["authorization"] == "Bearer the-banks-inbox-token"
    assert reasons[0] == reasons[1]
    for leaked in ("500", "db01", "refused", "Errno", "Connect"):
        assert leaked not in reasons[0]


def test_a_file_swapped_for_a_symlink_to_the_database_is_not_served(
    space: Space, tmp_path: Path
) -> None:
    source, _ = data_file(tmp_path, 1000, name="firms.csv")
    asset = offer_data(space, {"type": "file", "path": str(source)}, terms())
    grant = grant_for(space, asset)
    assert fetch(grant).status_code == 200
    source.unlink()
    source.symlink_to(Path(space.bureau.database_url.removeprefix("sqlite:///")))
    refused = fetch(grant)
    assert refused.status_code == 502
    assert refused.json()["reason"] == "source_unavailable"
    assert b"SQLite" not in refused.content
