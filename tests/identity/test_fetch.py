"""Every outbound fetch of the identity layer has a total deadline (a server that drips a byte at
a time never trips a per-read timeout) and a byte cap enforced while reading (an endless answer
is abandoned after the cap, not held whole). The drip-feed server is a real loopback server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta

import httpx
import pytest

from identity.documents import Service
from identity.errors import IdentityError, Reason
from identity.fetch import Limits, fetch
from identity.presentations import EVERY_SCOPE, MAX_VP_BYTES
from identity.resolver import DIDResolver
from identity.status import MAX_LIST_BYTES, StatusEntry, StatusListCache
from identity.sts import SecureTokenService
from identity.verifier import Verifier
from service.destinations import Destinations
from tests.identity.world import (
    AUTHORITY,
    BANK,
    BUREAU,
    LOOPBACK,
    NOW,
    STATUS_URL,
    World,
    replay_cache,
    trusted,
)

DRIP_INTERVAL_S = 0.5
"""Far below the client's per-read timeout (10 s): every single read succeeds."""
DRIP_FOR_S = 6.0
"""How long the server keeps dripping before it gives up (bounds the test without the fix)."""
DEADLINE_S = 1.5

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def drip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer 200 at once, then one byte of the promised body every DRIP_INTERVAL_S."""
    await reader.readuntil(b"\r\n\r\n")
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n\r\n"
    )
    started = time.monotonic()
    try:
        while time.monotonic() - started < DRIP_FOR_S:
            writer.write(b" ")
            await writer.drain()
            await asyncio.sleep(DRIP_INTERVAL_S)
    except ConnectionError:
        pass  # the client gave up: what the deadline is for
    finally:
        writer.close()


@asynccontextmanager
async def loopback(handler: Handler) -> AsyncIterator[int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


def timed(coroutine: Callable[[int], Awaitable[object]]) -> tuple[float, BaseException | None]:
    """Run ``coroutine(port)`` against the drip server: the seconds it took, and what it raised."""

    async def go() -> tuple[float, BaseException | None]:
        async with loopback(drip) as port:
            started = time.monotonic()
            try:
                await coroutine(port)
            except Exception as error:  # the test inspects it
                return time.monotonic() - started, error
            return time.monotonic() - started, None

    return asyncio.run(go())


def test_a_drip_fed_did_document_is_abandoned_at_the_deadline() -> None:
    async def resolve(port: int) -> object:
        async with httpx.AsyncClient(timeout=10) as client:
            resolver = DIDResolver(client, destinations=LOOPBACK, deadline_s=DEADLINE_S)
            return await resolver.resolve(f"did:web:127.0.0.1%3A{port}:drip")

    elapsed, error = timed(resolve)
    assert isinstance(error, IdentityError), error
    assert error.reason is Reason.UNRESOLVABLE_DID
    assert error.message.endswith("/drip/did.json: unreachable")
    assert DEADLINE_S <= elapsed < DEADLINE_S + 1.5, elapsed


def test_fetch_abandons_a_drip_fed_answer_at_its_deadline() -> None:
    async def get(port: int) -> object:
        async with httpx.AsyncClient(timeout=10) as client:
            return await fetch(
                client, "GET", f"http://127.0.0.1:{port}/x", Limits(1 << 20, DEADLINE_S),
                unavailable=Reason.STATUS_UNAVAILABLE, oversized=Reason.STATUS_UNAVAILABLE,
            )  # fmt: skip

    elapsed, error = timed(get)
    assert isinstance(error, IdentityError), error
    assert error.message.endswith("/x: unreachable")
    assert elapsed < DEADLINE_S + 1.5, elapsed


class Endless:
    """An answer body that never ends (up to a bound, for the test without the fix)."""

    CHUNK = b"x" * 16_384

    def __init__(self, bound: int = 16 << 20) -> None:
        self.sent = 0
        self.bound = bound

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while self.sent < self.bound:
            self.sent += len(self.CHUNK)
            yield self.CHUNK


@pytest.mark.parametrize("declared", [False, True], ids=["streamed", "content-length"])
def test_an_endless_answer_is_abandoned_at_the_cap(declared: bool) -> None:
    body = Endless()
    headers = {"Content-Length": str(body.bound)} if declared else {}

    async def go() -> None:
        transport = httpx.MockTransport(
            lambda r: httpx.Response(200, headers=headers, content=body)
        )
        async with httpx.AsyncClient(transport=transport) as client:
            await fetch(
                client, "GET", "http://big.test/", Limits(64 * 1024),
                unavailable=Reason.UNRESOLVABLE_DID, oversized=Reason.MALFORMED_DOCUMENT,
            )  # fmt: skip

    with pytest.raises(IdentityError) as raised:
        asyncio.run(go())
    assert raised.value.reason is Reason.MALFORMED_DOCUMENT
    assert body.sent <= 64 * 1024 + len(Endless.CHUNK)


def test_a_compressed_answer_is_refused_before_it_is_inflated() -> None:
    async def go() -> None:
        transport = httpx.MockTransport(
            lambda r: httpx.Response(200, headers={"Content-Encoding": "gzip"}, content=b"\x1f\x8b")
        )
        async with httpx.AsyncClient(transport=transport) as client:
            await fetch(
                client, "GET", "http://gz.test/", Limits(64 * 1024),
                unavailable=Reason.UNRESOLVABLE_DID, oversized=Reason.MALFORMED_DOCUMENT,
            )  # fmt: skip

    with pytest.raises(IdentityError) as raised:
        asyncio.run(go())
    assert raised.value.reason is Reason.UNRESOLVABLE_DID


def test_a_redirect_is_not_followed_and_other_answers_are_not_read() -> None:
    async def go() -> int:
        transport = httpx.MockTransport(
            lambda r: httpx.Response(
                302, headers={"Location": "http://evil.test/"}, content=Endless()
            )
        )
        async with httpx.AsyncClient(transport=transport) as client:
            answer = await fetch(
                client, "GET", "http://redirect.test/", Limits(64 * 1024),
                unavailable=Reason.UNRESOLVABLE_DID, oversized=Reason.MALFORMED_DOCUMENT,
            )  # fmt: skip
            return answer.status_code

    assert asyncio.run(go()) == 302


# --- the verifier's query to a Credential Service, and status lists ---------------------------


class Routes(httpx.AsyncBaseTransport):
    """The world's documents in memory; anything else (the loopback server) over the network."""

    def __init__(self, world: World, overrides: dict[str, httpx.Response]) -> None:
        self._memory = httpx.MockTransport(world.handle)
        self._network = httpx.AsyncHTTPTransport()
        self._overrides = overrides

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if str(request.url) in self._overrides:
            return self._overrides[str(request.url)]
        if request.url.host == "127.0.0.1":
            return await self._network.handle_async_request(request)
        return await self._memory.handle_async_request(request)

    async def aclose(self) -> None:
        await self._network.aclose()


def bank_with_credential_service(endpoint: str) -> World:
    world = World()
    world.add(AUTHORITY)
    world.add(BUREAU)
    world.add(BANK, (Service(f"{BANK}#credential-service", "CredentialService", endpoint),))
    return world


async def authenticate(
    world: World, transport: httpx.AsyncBaseTransport, **deadline: float
) -> object:
    async with httpx.AsyncClient(transport=transport, timeout=10) as client:
        resolver = world.resolver(client)
        verifier = Verifier(
            sts=SecureTokenService(world.rings[BUREAU], lambda: NOW), resolver=resolver,
            trusted=trusted(), revocation=world.status(client, resolver), replay=replay_cache(),
            client=client, required=(), cache_ttl=timedelta(seconds=60), clock=lambda: NOW,
            **deadline,
        )  # fmt: skip
        bearer = SecureTokenService(world.rings[BANK], lambda: NOW).bearer_for(BUREAU, EVERY_SCOPE)
        return await verifier.authenticate("Bearer " + bearer)


def test_an_endless_credential_service_answer_is_abandoned_at_the_cap() -> None:
    world = bank_with_credential_service("http://bank.test/cs")
    body = Endless()
    answer = httpx.Response(200, headers={"Content-Type": "application/json"}, content=body)
    routes = Routes(world, {"http://bank.test/cs/presentations/query": answer})
    with pytest.raises(IdentityError) as raised:
        asyncio.run(authenticate(world, routes))
    assert raised.value.reason is Reason.ACCESS_DENIED
    assert body.sent <= MAX_VP_BYTES + len(Endless.CHUNK)


def test_a_drip_fed_credential_service_is_abandoned_at_the_deadline() -> None:
    async def go(port: int) -> object:
        world = bank_with_credential_service(f"http://127.0.0.1:{port}/cs")
        world.destinations = Destinations.of(
            allow_http=True, allowed_networks=LOOPBACK.allowed_networks,
            credential_service_hosts=["127.0.0.1"],
        )  # fmt: skip
        return await authenticate(world, Routes(world, {}), deadline_s=DEADLINE_S)

    elapsed, error = timed(go)
    assert isinstance(error, IdentityError), error
    assert error.reason is Reason.UNRESOLVABLE_DID
    assert error.message.endswith("/cs/presentations/query: unreachable")
    assert elapsed < DEADLINE_S + 1.5, elapsed


def test_an_endless_status_list_is_abandoned_at_the_cap() -> None:
    world = World()
    world.add(AUTHORITY)
    body = Endless()
    routes = Routes(world, {STATUS_URL: httpx.Response(200, content=body)})

    async def go() -> bool:
        async with httpx.AsyncClient(transport=routes) as client:
            cache = StatusListCache(client, world.resolver(client))
            return await cache.is_revoked(StatusEntry(STATUS_URL, 0), AUTHORITY)

    with pytest.raises(IdentityError) as raised:
        asyncio.run(go())
    assert raised.value.reason is Reason.STATUS_UNAVAILABLE
    assert body.sent <= MAX_LIST_BYTES + len(Endless.CHUNK)


def test_a_drip_fed_status_list_is_abandoned_at_the_deadline() -> None:
    async def go(port: int) -> object:
        world = World()
        world.add(AUTHORITY)
        async with httpx.AsyncClient(transport=Routes(world, {}), timeout=10) as client:
            cache = StatusListCache(client, world.resolver(client), deadline_s=DEADLINE_S)
            entry = StatusEntry(f"http://127.0.0.1:{port}/status/1", 0)
            return await cache.is_revoked(entry, AUTHORITY)

    elapsed, error = timed(go)
    assert isinstance(error, IdentityError), error
    assert error.reason is Reason.STATUS_UNAVAILABLE
    assert error.message.endswith("/status/1: unreachable")
    assert elapsed < DEADLINE_S + 1.5, elapsed
