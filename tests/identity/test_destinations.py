"""The identity layer's outbound fetches go through the destination policy: a did:web naming an
IP literal, and a Credential Service with a query string or on someone else's host, are refused
before any request is made; and however a destination fails to answer, the caller is told the
same thing (no port-scan oracle)."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta

import httpx
import pytest

from identity.documents import Service
from identity.errors import IdentityError, Reason
from identity.presentations import EVERY_SCOPE
from identity.resolver import DIDResolver
from identity.sts import SecureTokenService
from identity.verifier import Verifier
from service.destinations import Destinations
from service.transport import guarded_transport
from tests.identity.world import BANK, BUREAU, LOOPBACK, NOW, World, replay_cache, trusted


@pytest.mark.parametrize(
    "did",
    [
        "did:web:0.0.0.0",
        "did:web:169.254.169.254",
        "did:web:10.0.0.8%3A6379",
        "did:web:127.0.0.1%3A8282:authority",
        "did:web:2130706433",
        "did:web:localhost%3A8282",
    ],
)
def test_a_did_web_on_an_ip_literal_is_not_fetched(did: str) -> None:
    requests: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(404)

    async def go() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(record)) as client:
            await DIDResolver(client, allow_http=True).resolve(did)

    with pytest.raises(IdentityError) as raised:
        asyncio.run(go())
    assert raised.value.reason is Reason.UNRESOLVABLE_DID
    assert "refused" in raised.value.message
    assert requests == []


def authenticate_bank(world: World, endpoint: str) -> list[str]:
    """The bureau authenticates the bank, whose DID document names ``endpoint`` as its
    Credential Service; the URLs the bureau's verifier requested."""
    world.add(BUREAU)
    world.add(BANK, (Service(f"{BANK}#cs", "CredentialService", endpoint),))

    async def go() -> None:
        async with world.client() as client:
            resolver = world.resolver(client)
            verifier = Verifier(
                sts=SecureTokenService(world.rings[BUREAU], lambda: NOW), resolver=resolver,
                trusted=trusted(), revocation=world.status(client, resolver),
                replay=replay_cache(), client=client, required=(),
                cache_ttl=timedelta(seconds=60), clock=lambda: NOW,
            )  # fmt: skip
            bearer = SecureTokenService(world.rings[BANK], lambda: NOW).bearer_for(
                BUREAU, EVERY_SCOPE
            )
            await verifier.authenticate("Bearer " + bearer)

    with pytest.raises(IdentityError) as raised:
        asyncio.run(go())
    assert raised.value.reason is Reason.UNRESOLVABLE_DID
    assert "Credential Service refused" in raised.value.message
    return world.requests


@pytest.mark.parametrize(
    "endpoint",
    [
        pytest.param("http://bank.test/cs?next=/admin/credentials", id="a query string"),
        pytest.param("http://broker.test/admin", id="another host"),
        pytest.param("http://127.0.0.1:8282/admin", id="loopback"),
        pytest.param("http://user:pw@bank.test/cs", id="userinfo"),
    ],
)
def test_a_credential_service_elsewhere_is_never_queried(endpoint: str) -> None:
    requested = authenticate_bank(World(), endpoint)
    assert not any("/presentations/query" in url for url in requested), requested


Serve = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def slam(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.transport.abort()  # a reset: a port that is open but speaks no HTTP


async def garble(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(1)  # a plain HTTP request or a TLS hello: answered in another protocol
    writer.write(b"SSH-2.0-OpenSSH_9.6\r\n")
    await writer.drain()
    writer.close()
    await writer.wait_closed()


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read()  # takes the connection and never answers, until the client gives up
    writer.close()
    await writer.wait_closed()


@asynccontextmanager
async def serving(handler: Serve | None) -> AsyncIterator[int]:
    """A loopback port with ``handler`` behind it, or (None) a closed port."""
    if handler is None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        yield port  # closed again: connections are refused
        return
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


def failure_seen_by_a_caller(
    handler: Serve | None, *, https: bool = False, destinations: Destinations = LOOPBACK
) -> str:
    async def go() -> str:
        async with serving(handler) as port:
            transport = guarded_transport(destinations)
            policy = Destinations.of(
                allow_http=not https, allowed_networks=LOOPBACK.allowed_networks
            )
            async with httpx.AsyncClient(transport=transport, timeout=5) as client:
                resolver = DIDResolver(client, destinations=policy, deadline_s=1.0)
                try:
                    await resolver.resolve(f"did:web:127.0.0.1%3A{port}:bank")
                except IdentityError as error:
                    return f"{error.reason.value}: " + error.message.replace(str(port), "PORT")
        raise AssertionError("resolved")

    return asyncio.run(go())


def test_every_way_of_not_answering_looks_the_same_to_the_caller() -> None:
    closed = failure_seen_by_a_caller(None)
    assert closed.endswith("/bank/did.json: unreachable"), closed
    assert re.fullmatch(
        r"unresolvable_did: https?://127\.0\.0\.1:PORT/bank/did\.json: unreachable", closed
    )
    for handler in (slam, garble, silent):
        assert failure_seen_by_a_caller(handler) == closed, handler.__name__
    # TLS to a server that speaks plain HTTP: the same words (for the https URL)
    assert failure_seen_by_a_caller(garble, https=True) == closed.replace("http:", "https:")
    # and a destination the connect-time check refuses
    refused = failure_seen_by_a_caller(garble, destinations=Destinations(allow_http=True))
    assert refused == closed
