"""Outbound HTTP of the identity layer (DID documents, status lists, presentations): one request
with a total deadline and a byte cap enforced while the body is read.

The client's own timeouts bound each connect and each read, not the whole exchange: a server
that drips one byte every few seconds never trips a read timeout. So every exchange here runs
under a deadline for all of it (connect, headers, body), and the body is read chunk by chunk
and abandoned as soon as it passes ``max_bytes``, before it is ever held whole. Every failure
(network, malformed URL, deadline, size) is an :class:`IdentityError` with the caller's reason.
A failure to get an answer at all (refused, reset, timed out, TLS, DNS, past the deadline, or a
destination the connect-time policy refuses) is told to the caller as "unreachable" and nothing
more, so that error bodies are no port-scan oracle; the log keeps the detail.
Redirects are never followed. Bodies of answers other than 200 are not read. Bodies are asked
for and read unencoded (``Accept-Encoding: identity``; a compressed answer is refused), so that
the cap counts the bytes held, not bytes that a decompressor could multiply.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import anyio
import httpx

from identity.errors import IdentityError, Reason

log = logging.getLogger("kexin.identity")

_UNENCODED: Final = {"Accept-Encoding": "identity"}
FETCH_DEADLINE_S: Final = 10.0
"""The default total deadline of one identity exchange, from connect to the body's last byte."""


@dataclass(frozen=True)
class Answer:
    status_code: int
    body: bytes
    """Empty unless the status is 200."""
    links: Mapping[str, str] = field(default_factory=dict)
    """The ``Link`` header's targets by relation (``next``: the next page), of a 200."""
    etag: str | None = None
    """The ``ETag`` header, of a 200 or a 304."""


@dataclass(frozen=True)
class Limits:
    max_bytes: int
    deadline_s: float = FETCH_DEADLINE_S


async def fetch(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    limits: Limits,
    *,
    unavailable: Reason,
    oversized: Reason,
    json_body: Any = None,
    headers: Mapping[str, str] | None = None,
) -> Answer:
    """``unavailable`` is the reason for network failures and a missed deadline; ``oversized``
    for a body over ``limits.max_bytes``."""
    try:
        with anyio.fail_after(limits.deadline_s):
            request = client.build_request(
                method, url, json=json_body, headers={**(headers or {}), **_UNENCODED}
            )
            return await _exchange(client, request, limits.max_bytes, unavailable, oversized)
    except TimeoutError:
        log.info("%s: no complete answer within %s s", url, limits.deadline_s)
        raise IdentityError(unavailable, f"{url}: unreachable") from None
    except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError) as error:
        log.info("%s: %r", url, error)
        raise IdentityError(unavailable, f"{url}: unreachable") from None


async def _exchange(
    client: httpx.AsyncClient,
    request: httpx.Request,
    max_bytes: int,
    unavailable: Reason,
    oversized: Reason,
) -> Answer:
    url = request.url
    response = await client.send(request, stream=True, follow_redirects=False)
    try:
        etag = response.headers.get("etag")
        if response.status_code != httpx.codes.OK:
            return Answer(response.status_code, b"", etag=etag)
        if response.headers.get("content-encoding", "identity").lower() != "identity":
            raise IdentityError(unavailable, f"{url}: a compressed answer, asked for identity")
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise IdentityError(oversized, f"{url}: answer of {declared} bytes, over {max_bytes}")
        body = bytearray()
        async for chunk in response.aiter_bytes():  # identity-encoded: the bytes as sent
            body += chunk
            if len(body) > max_bytes:
                raise IdentityError(oversized, f"{url}: answer over {max_bytes} bytes")
        links = {
            rel: link["url"]
            for rel, link in response.links.items()
            if rel is not None and "url" in link
        }
        return Answer(response.status_code, bytes(body), links, etag)
    finally:
        await response.aclose()
