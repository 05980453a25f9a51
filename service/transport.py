"""The services' outbound HTTP transport: every TCP connection is checked against the
destination policy (:mod:`service.destinations`) at connect time, in this one place.

A host name is resolved here, each of its addresses is judged (``Destinations.address_allowed``)
and the connection is made only to the admitted ones, to those very addresses, so that the
name cannot resolve to something else between the check and the connect (DNS rebinding); a
name with no admitted address is refused. TLS still verifies the certificate against the
host name of the URL. A refused destination fails like an unreachable one
(``httpx.ConnectError``): a caller learns nothing of where a name points. The httpcore
adapter: the only module that imports httpcore.
"""

from __future__ import annotations

import ipaddress
import logging
import select
import socket
from collections.abc import Iterable
from typing import Any

import anyio
import httpcore
import httpx

from service.destinations import Destinations, IPAddress

log = logging.getLogger("kexin.outbound")


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's anyio backend, connecting only to addresses the policy admits."""

    def __init__(self, destinations: Destinations) -> None:
        self._destinations = destinations
        self._backend = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        resolved = await self._resolve(host, port, timeout)
        addresses = [a for a in resolved if self._destinations.address_allowed(a)]
        if not addresses:
            log.warning("outbound connection to %s refused: %s not allowed", host, resolved)
            raise httpcore.ConnectError(f"{host}: unreachable")
        failure: Exception | None = None
        for address in addresses:
            try:
                stream = await self._backend.connect_tcp(
                    str(address), port, timeout=timeout, local_address=local_address,
                    socket_options=socket_options,
                )  # fmt: skip
                return _Stream(stream)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as error:
                failure = error
        assert failure is not None  # noqa: S101 - addresses is not empty
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not an outbound destination")

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)

    async def _resolve(self, host: str, port: int, limit_s: float | None) -> list[IPAddress]:
        try:
            return [ipaddress.ip_address(host)]
        except ValueError:
            pass
        try:
            with anyio.fail_after(limit_s):
                infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"{host}: unreachable") from None
        except OSError:
            raise httpcore.ConnectError(f"{host}: unreachable") from None
        found: list[IPAddress] = []
        for _family, _type, _proto, _name, sockaddr in infos:
            address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
            if address not in found:
                found.append(address)
        return found


class _Stream(httpcore.AsyncNetworkStream):
    """httpcore's stream, answering ``is_readable`` from its socket directly. httpcore asks
    it of every pooled connection each time it assigns a request or releases one, and anyio
    builds the stream's whole attribute table (``getpeername`` included) for each ask: with
    a pool of idle keep-alive connections that was a tenth of a busy connector's CPU."""

    def __init__(self, stream: httpcore.AsyncNetworkStream) -> None:
        self._stream = stream
        self._socket: socket.socket | None = stream.get_extra_info("socket")

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        return await self._stream.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        await self._stream.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(
        self,
        ssl_context: Any,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
    ) -> httpcore.AsyncNetworkStream:
        return _Stream(await self._stream.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            # readable while idle: the peer closed it (or sent what it must not); as httpcore
            fd = -1 if self._socket is None else self._socket.fileno()
            if fd == -1:
                return True
            poll = select.poll()
            poll.register(fd, select.POLLIN)
            return bool(poll.poll(0))
        return self._stream.get_extra_info(info)


def guarded_transport(
    destinations: Destinations, *, max_connections: int = 100
) -> httpx.AsyncHTTPTransport:
    """httpx's transport (TLS verified, no proxy from the environment), its connections made
    through :class:`GuardedBackend`."""
    limits = httpx.Limits(max_connections=max_connections)
    transport = httpx.AsyncHTTPTransport(limits=limits, trust_env=False)
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=httpx.create_ssl_context(trust_env=False),
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=GuardedBackend(destinations),
    )
    return transport
