"""The connect-time check: a host name that resolves to a non-global address is refused unless
that address is in an allowed network, and the refusal looks like any unreachable host. A real
server on 127.0.0.1, reached by the name ``localhost``."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from service.destinations import Destinations
from service.transport import guarded_transport

LOOPBACK = Destinations.of(allow_http=True, allowed_networks=[ipaddress.ip_network("127.0.0.0/8")])


@asynccontextmanager
async def answering() -> AsyncIterator[tuple[int, list[bytes]]]:
    """A loopback server that answers every request 200, and the requests it saw."""
    seen: list[bytes] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], seen
    finally:
        server.close()


async def get(url: str, destinations: Destinations) -> httpx.Response:
    async with httpx.AsyncClient(transport=guarded_transport(destinations), timeout=5) as client:
        return await client.get(url)


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_a_name_or_literal_reaching_loopback_is_refused_at_connect_time(host: str) -> None:
    async def go() -> list[bytes]:
        async with answering() as (port, seen):
            with pytest.raises(httpx.ConnectError, match="unreachable"):
                await get(f"http://{host}:{port}/admin", Destinations(allow_http=True))
            return seen

    assert asyncio.run(go()) == []  # nothing reached the server


def test_an_allowed_network_is_connected_to() -> None:
    async def go() -> tuple[int, list[bytes]]:
        async with answering() as (port, seen):
            response = await get(f"http://localhost:{port}/did.json", LOOPBACK)
            return response.status_code, seen

    status, seen = asyncio.run(go())
    assert status == 200
    assert seen[0].startswith(b"GET /did.json")
    assert b"host: localhost:" in seen[0].lower()  # the name is still the Host


def test_a_kept_alive_connection_the_server_closed_is_not_reused() -> None:
    """The pool asks each idle connection whether it is readable (closed by the server) before
    it reuses it: a server that closes a kept-alive connection between two requests must not
    fail the second one (the stream answers that question from its socket, see _Stream)."""
    connections: list[int] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(len(connections))
        await reader.readuntil(b"\r\n\r\n")
        # keep-alive offered, then the server closes anyway (as after its idle timeout)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()

    async def go() -> list[int]:
        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            transport = guarded_transport(LOOPBACK)
            async with httpx.AsyncClient(transport=transport, timeout=5) as client:
                for _ in range(3):
                    response = await client.get(f"http://127.0.0.1:{port}/")
                    assert response.status_code == 200
                    await asyncio.sleep(0.05)  # the close reaches us while the connection idles
        finally:
            server.close()
        return connections

    assert asyncio.run(go()) == [0, 1, 2]  # a new connection each time, no failed request


def test_an_idle_connection_is_reused() -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(1)
        for _ in range(3):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
        writer.close()

    seen: list[int] = []

    async def go() -> None:
        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            async with httpx.AsyncClient(transport=guarded_transport(LOOPBACK), timeout=5) as c:
                for _ in range(3):
                    assert (await c.get(f"http://127.0.0.1:{port}/")).status_code == 200
        finally:
            server.close()

    asyncio.run(go())
    assert seen == [1]  # one connection for the three requests
