"""Limits before work, against a real server: a body declared or streamed past the limit is
refused (413, typed) before any route reads it, without an API key and without the server
waiting for the rest of it. And JSON depth, bounded once for every body at parsing: a body
nested past the limit is a typed 400 on every API surface, whatever its media type, never a
RecursionError or a parser's untyped refusal."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import settings as examples
from hypothesis import strategies as st
from pydantic import SecretStr

from broker.app import create_app as create_broker
from broker.settings import BrokerSettings
from connector.app import create_app
from dataspace.servers import bind, serve_in_thread
from service.limits import MAX_JSON_DEPTH, BodyLimit, json_depth, nests_deeper, too_deep
from tests.connector.test_conformance import AUTH, KEY, conformance_settings, settings
from tests.dsp_schemas import errors
from tests.participants import ADMIN_KEY, PASSPHRASE

LIMIT = 1 << 20


def answer_of(sock: socket.socket) -> tuple[int, dict[str, object]]:
    sock.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < 60:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    status = int(head.split(b" ")[1])
    return status, json.loads(body[: body.rindex(b"}") + 1])


def test_a_body_declared_too_large_is_refused_at_once(tmp_path: Path) -> None:
    listening = bind()
    with serve_in_thread(create_app(settings(tmp_path)), listening) as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as sock:
            started = time.monotonic()
            sock.sendall(
                b"POST /management/v1/policydefinitions HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/json\r\nContent-Length: 67108864\r\n\r\n{"
            )
            status, body = answer_of(sock)
            waited = time.monotonic() - started
    assert status == 413
    assert body["reason"] == "body_too_large"
    assert waited < 5  # not waiting for 64 MiB that never come


def test_a_chunked_body_is_cut_off_at_the_limit(tmp_path: Path) -> None:
    listening = bind()
    with serve_in_thread(create_app(settings(tmp_path)), listening) as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(
                b"POST /contracts/v1/data HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            )
            sent = 0
            chunk = b"x" * 65536
            try:
                while sent < 8 * LIMIT:
                    sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    sent += len(chunk)
            except OSError:  # the server closed the connection on us: refused
                pass
            status, body = answer_of(sock)
    assert status == 413
    assert body["reason"] == "body_too_large"


@pytest.mark.parametrize("declared", [True, False], ids=["declared", "chunked"])
def test_a_refused_body_is_read_to_its_end_before_the_answer(declared: bool) -> None:
    """Answering while the client still sends, then closing, makes its kernel see a reset: the
    client loses the 413 (the e2e oversized test failed so now and then). So a refused body of
    moderate size is read and thrown away first; the route never sees any of it."""
    chunks = [b"0," * 50_000] * 12  # 1.2 MB in 12 parts, past a 256 KiB limit
    events: list[str] = []

    async def receive() -> dict[str, Any]:
        index = sum(1 for e in events if e == "read")
        events.append("read")
        return {"type": "http.request", "body": chunks[index], "more_body": index < 11}

    async def send(message: dict[str, Any]) -> None:
        events.append(message["type"])

    async def route(scope: Any, receive_: Any, send_: Any) -> None:
        while (await receive_()).get("more_body"):
            pass
        raise AssertionError("the route read the whole body")

    total = sum(map(len, chunks))
    headers = [(b"content-length", str(total).encode())] if declared else []
    scope = {"type": "http", "method": "POST", "path": "/x", "headers": headers}
    asyncio.run(BodyLimit(route, max_bytes=256 * 1024)(scope, receive, send))  # type: ignore[arg-type]
    assert events == ["read"] * 12 + ["http.response.start", "http.response.body"]


# --- JSON depth: bounded once, at parsing, for every body ----------------------------------

DEEP = b"[" * 10_000 + b"]" * 10_000


@pytest.mark.parametrize(
    ("body", "depth"),
    [
        pytest.param(b"", 0, id="empty"),
        pytest.param(b"1", 0, id="scalar"),
        pytest.param(b'{"a": [1, {"b": []}]}', 4, id="nested"),
        pytest.param(DEEP, 10_000, id="ten-thousand"),
        pytest.param(b'["[[[[", "\\"[[", "\\\\", [[]]]', 3, id="brackets-in-strings"),
        pytest.param(b'{"k\\\\\\"[": "}}}", "v": [[["\\\\"]]]}', 4, id="escapes"),
        pytest.param(b"[" * 65 + b"]" * 65, 65, id="past-the-limit"),
    ],
)
def test_json_depth_counts_only_the_brackets_outside_strings(body: bytes, depth: int) -> None:
    assert json_depth(body) == depth


def nesting(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(nesting, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(nesting, value), default=0)
    return 0


TRICKY = st.text(alphabet='[]{}"\\ab\u00e9\n', max_size=8)
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | TRICKY,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TRICKY, inner, max_size=3),
    max_leaves=40,
)


@examples(max_examples=300, deadline=None)
@given(VALUES, st.booleans())
def test_json_depth_is_the_parsed_nesting(value: Any, ascii_only: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only).encode()
    assert json_depth(text) == nesting(value)


def test_a_body_at_the_limit_passes_and_one_past_it_does_not() -> None:
    assert not nests_deeper(b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH)
    assert nests_deeper(b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1))
    wide = b"[" + b"[[]]," * 100_000 + b"[]]"  # many brackets, shallow
    assert not nests_deeper(wide)


CONNECTOR_SURFACES = [
    pytest.param("/management/v1/policydefinitions", KEY, "reason", id="management-policy"),
    pytest.param("/management/v1/assets", KEY, "reason", id="management-asset"),
    pytest.param("/contracts/v1/data", KEY, "reason", id="data-contracts"),
    pytest.param("/dsp/negotiations/request", AUTH, "code", id="dsp-negotiation"),
    pytest.param("/dsp/transfers/urn:uuid:p/start", AUTH, "code", id="dsp-transfer"),
    pytest.param("/dsp/catalog/request", AUTH, "code", id="dsp-catalog"),
    pytest.param("/cs/presentations/query", {}, "reason", id="dcp-presentation-query"),
    pytest.param("/cs/credentials", {}, "reason", id="dcp-credentials"),
    pytest.param("/dataplane/v1/token", {}, "reason", id="data-plane-refresh"),
    pytest.param("/conformance/negotiations/initiate", AUTH, "reason", id="conformance"),
]
ROUTE_LIMITS = {"/dataplane/v1/token": 4096}
"""Routes that take less than the service's body limit: past theirs, the size refuses first."""
MEDIA_TYPES = [
    pytest.param({"Content-Type": "application/json"}, id="json"),
    pytest.param({"Content-Type": "application/ld+json"}, id="ld-json"),
    pytest.param({"Content-Type": "text/plain"}, id="text"),
    pytest.param({}, id="no-media-type"),
]


def assert_refused_deep(response: httpx2.Response, field: str, size_limit: int | None) -> None:
    """Too deep (400) — or too large first, for a route with a limit of its own — or, for a
    body that no parser takes as JSON (declared text to a body model), not valid (422)."""
    body = response.json()
    if size_limit is not None and len(response.request.content) > size_limit:
        assert (response.status_code, body[field]) == (413, "body_too_large"), response.text
    elif response.status_code == 422:
        assert response.request.headers.get("content-type") == "text/plain", response.text
        assert body["reason"] == "invalid_request"
    else:
        assert (response.status_code, body[field]) == (400, "too_deep"), response.text


@pytest.fixture(scope="module")
def connector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    app = create_app(conformance_settings(tmp_path_factory.mktemp("depth")))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.mark.parametrize(("path", "headers", "field"), CONNECTOR_SURFACES)
@pytest.mark.parametrize("media_type", MEDIA_TYPES)
@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 10_000])
def test_a_deep_body_is_refused_typed_on_every_connector_surface(
    connector: TestClient,
    path: str,
    headers: dict[str, str],
    field: str,
    media_type: dict[str, str],
    depth: int,
) -> None:
    body = b"[" * depth + b"]" * depth
    response = connector.post(path, content=body, headers={**headers, **media_type})
    assert_refused_deep(response, field, ROUTE_LIMITS.get(path))


def test_a_deep_dsp_body_is_a_dsp_error(connector: TestClient) -> None:
    response = connector.post(
        "/dsp/negotiations/request", content=DEEP, headers={**AUTH, "Content-Type": "text/plain"}
    )
    assert response.status_code == 400
    body = response.json()
    assert body["@type"] == "ContractNegotiationError"
    assert body["reason"] == [too_deep(MAX_JSON_DEPTH)]
    assert errors("negotiation/contract-negotiation-error-schema.json", body) == []


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = BrokerSettings(
        authority_id="did:web:127.0.0.1%3A8180:authority",
        database_url=f"sqlite:///{tmp_path_factory.mktemp('depth') / 'broker.db'}",
        key_passphrase=SecretStr(PASSPHRASE),
        admin_api_key=SecretStr(ADMIN_KEY),
    )
    with TestClient(create_broker(settings), raise_server_exceptions=False) as client:
        yield client


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/admin/requests/urn:uuid:r/approve", id="admin-approve"),
        pytest.param("/admin/requests/urn:uuid:r/reject", id="admin-reject"),
    ],
)
@pytest.mark.parametrize("media_type", MEDIA_TYPES)
def test_a_deep_body_is_refused_typed_on_the_broker_admin_api(
    broker: TestClient, path: str, media_type: dict[str, str]
) -> None:
    response = broker.post(path, content=DEEP, headers={**KEY, **media_type})
    assert_refused_deep(response, "reason", None)


def test_a_credential_request_is_authenticated_before_its_body_is_read(broker: TestClient) -> None:
    # DCP's ID token first: without one the body, deep or not, is never parsed
    response = broker.post("/credentials", content=DEEP, headers={"Content-Type": "text/plain"})
    assert (response.status_code, response.json()["reason"]) == (401, "malformed_token")


def test_the_match_api_takes_a_larger_body_and_only_it(tmp_path: Path) -> None:
    """``POST /contracts/v1/match`` carries the application's identifiers: its own limit
    (``contracts_match_max_body_bytes``); every other path keeps ``max_body_bytes``."""
    body = json.dumps({"items": ["x" * 100] * (2 * LIMIT // 100)})
    headers = {"X-Api-Key": ADMIN_KEY, "Content-Type": "application/json"}
    with TestClient(create_app(settings(tmp_path))) as client:
        other = client.post("/management/v1/policydefinitions", content=body, headers=headers)
        assert (other.status_code, other.json()["reason"]) == (413, "body_too_large")
        matched = client.post("/contracts/v1/match", content=body, headers=headers)
        assert matched.status_code == 422  # read and validated: the provider is missing
