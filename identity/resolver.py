"""DID resolution: ``did:web`` over HTTP(S) with a total deadline, a size limit enforced while
reading and a cache; ``did:key`` and ``did:jwk`` from the DID itself. No other method resolves.
A did:web is checked part by part (host, percent-encoded port, path segments) before any URL is
built from it, and resolution fails only with an :class:`IdentityError`.

``did:web:127.0.0.1%3A8101:bank`` is fetched from ``https://127.0.0.1:8101/bank/did.json``;
``did:web:example.cn`` from ``https://example.cn/.well-known/did.json``. Plain HTTP is used only
when ``allow_http`` is set (loopback test and demo set-ups); the did:web method requires HTTPS.
Every document URL goes through the outbound destination policy (:mod:`service.destinations`:
an IP literal such as ``127.0.0.1`` only inside the allowed networks), which the resolver holds
for the lookups that follow from a document (a caller's Credential Service).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from typing import Final
from urllib.parse import quote, unquote

import anyio
import httpx

from identity.did import DIDSyntaxError, check_did
from identity.documents import DIDDocument, did_jwk_document, did_key_document, parse_document
from identity.errors import IdentityError, Reason
from identity.fetch import FETCH_DEADLINE_S, Limits, fetch
from identity.flight import SingleFlight
from service.destinations import DestinationError, Destinations, Purpose

MAX_DOCUMENT_BYTES: Final = 64 * 1024


# RFC 1035 / RFC 1123 labels: letters, digits and hyphens, 1 to 63, no hyphen at either end
_LABEL: Final = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_PORT: Final = re.compile(r"[1-9][0-9]{0,4}")
MAX_HOST_LENGTH: Final = 253
MAX_PORT: Final = 65535
_UNSAFE_IN_SEGMENT: Final = frozenset("/\\?#%")


def _web_host(encoded: str, did: str) -> str:
    """The host, and port, of a did:web. did:web method specification, 3.1: "The formal rules
    describing valid domain name syntax are described in [RFC1035], [RFC1123], and [RFC2181]. [...]
    A port MAY be included and the colon MUST be percent encoded to prevent a conflict with
    paths." So: labels of RFC 1123, no other percent-encoding, a port of 1 to 65535."""
    name, colon, port = re.sub("%3[Aa]", ":", encoded, count=1).partition(":")
    if len(name) > MAX_HOST_LENGTH or not all(_LABEL.fullmatch(x) for x in name.split(".")):
        raise IdentityError(Reason.MALFORMED_DID, f"{did}: not a valid did:web host")
    if colon and not (_PORT.fullmatch(port) and int(port) <= MAX_PORT):
        raise IdentityError(Reason.MALFORMED_DID, f"{did}: not a valid did:web port")
    return name + colon + port


def _web_segment(encoded: str, did: str) -> str:
    """One path segment (3.1: "Directories and subdirectories MAY optionally be included,
    delimited by colons rather than slashes"): percent-decoded as UTF-8, refused when empty, a
    dot segment, or holding a separator, a percent sign, white space or a control character;
    then percent-encoded again for the URL."""
    try:
        segment = unquote(encoded, errors="strict")
    except UnicodeDecodeError:
        segment = ""
    if segment in ("", ".", "..") or any(
        c in _UNSAFE_IN_SEGMENT or c.isspace() or not c.isprintable() for c in segment
    ):
        raise IdentityError(Reason.MALFORMED_DID, f"{did}: not a valid did:web path")
    return quote(segment, safe="")


def did_web_url(did: str, *, allow_http: bool = False) -> str:
    """The address of a did:web document. did:web method specification, 3.2.2 Read (Resolve):
    "Replace ':' with '/' in the method specific identifier to obtain the fully qualified domain
    name and optional path. If the domain contains a port, percent decode the colon. [...] If no
    path has been specified in the URL, append /.well-known." Then ``/did.json``."""
    if not did.startswith("did:web:"):
        raise IdentityError(Reason.MALFORMED_DID, f"{did}: not a did:web")
    host, *segments = did.removeprefix("did:web:").split(":")
    authority = _web_host(host, did)
    path = [_web_segment(segment, did) for segment in segments]
    scheme = "http" if allow_http else "https"
    suffix = "/".join(path) + "/did.json" if path else ".well-known/did.json"
    return f"{scheme}://{authority}/{suffix}"


MAX_RESOLUTIONS_PER_HOST: Final = 4
"""did:web documents fetched at once from one host: a caller that is not known yet (its
document is not cached) names a host it controls, and may mint as many DIDs on it as it likes;
the others wait their turn (within the fetch deadline), so that a host that drip-feeds its
documents holds at most this many of the verifier's connections, and DIDs on other hosts are
not held up at all."""
MAX_WAITING_PER_HOST: Final = 64
"""Resolutions waiting for one host at most; more are refused at once."""
MAX_RESOLUTIONS: Final = 32
"""did:web documents fetched at once in all: below the verification pool's 50 connections, so
that presentation queries and status lists of callers already known always find one."""


class DIDResolver:
    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        cache_ttl_s: float = 300.0,
        allow_http: bool = False,
        clock: Callable[[], float] = time.monotonic,
        deadline_s: float = FETCH_DEADLINE_S,
        destinations: Destinations | None = None,
    ) -> None:
        """``destinations``: the outbound policy (by default the strict one, with plain HTTP
        as ``allow_http`` says); given, its own ``allow_http`` decides."""
        self.destinations = destinations or Destinations(allow_http=allow_http)
        allow_http = self.destinations.allow_http
        self._client = client
        self._deadline_s = deadline_s
        self._ttl_s = cache_ttl_s
        self._allow_http = allow_http
        self._clock = clock
        self._cache: dict[str, tuple[float, DIDDocument]] = {}
        self._flights: SingleFlight[str, DIDDocument] = SingleFlight()
        self.max_per_host = MAX_RESOLUTIONS_PER_HOST
        self._slots: dict[str, asyncio.Semaphore] = {}
        """did:web host -> its fetches at once (MAX_RESOLUTIONS_PER_HOST)."""
        self._waiting: dict[str, int] = {}
        """did:web host -> resolutions fetching or waiting to fetch from it."""
        self._all = asyncio.Semaphore(MAX_RESOLUTIONS)

    async def resolve(self, did: str) -> DIDDocument:
        try:
            check_did(did)
        except DIDSyntaxError as error:
            raise IdentityError(Reason.MALFORMED_DID, str(error)) from None
        if did.startswith("did:key:"):
            return did_key_document(did)
        if did.startswith("did:jwk:"):
            return did_jwk_document(did)
        if not did.startswith("did:web:"):
            raise IdentityError(Reason.UNRESOLVABLE_DID, f"{did}: DID method not supported")
        now = self._clock()
        cached = self._cache.get(did)
        if cached is not None and cached[0] > now:
            return cached[1]
        document = await self._flights.run(did, lambda: self._fetch(did))
        self._cache[did] = (now + self._ttl_s, document)
        return document

    def forget(self, did: str) -> None:
        self._cache.pop(did, None)

    async def _fetch(self, did: str) -> DIDDocument:
        url = did_web_url(did, allow_http=self._allow_http)
        try:
            self.destinations.check(url, Purpose.DID_DOCUMENT)
        except DestinationError as error:
            raise IdentityError(Reason.UNRESOLVABLE_DID, f"{did}: {error}") from None
        host = httpx.URL(url).host
        waiting = self._waiting.get(host, 0)
        if waiting >= MAX_WAITING_PER_HOST:
            raise IdentityError(
                Reason.UNRESOLVABLE_DID, f"{did}: too many DID documents asked of {host} at once"
            )
        slots = self._slots.setdefault(host, asyncio.Semaphore(self.max_per_host))
        self._waiting[host] = waiting + 1
        try:
            try:
                with anyio.fail_after(self._deadline_s):  # a turn, within the fetch deadline
                    await slots.acquire()
                    try:
                        await self._all.acquire()
                    except BaseException:
                        slots.release()
                        raise
            except TimeoutError:
                raise IdentityError(Reason.UNRESOLVABLE_DID, f"{url}: unreachable") from None
            try:  # the fetch itself has its own deadline
                return await self._fetch_from(did, url)
            finally:
                self._all.release()
                slots.release()
        finally:
            left = self._waiting.pop(host) - 1
            if left:
                self._waiting[host] = left
            else:  # nobody fetches from that host or waits to: forget its slots
                self._slots.pop(host, None)

    async def _fetch_from(self, did: str, url: str) -> DIDDocument:
        answer = await fetch(
            self._client, "GET", url, Limits(MAX_DOCUMENT_BYTES, self._deadline_s),
            unavailable=Reason.UNRESOLVABLE_DID, oversized=Reason.MALFORMED_DOCUMENT,
        )  # fmt: skip
        if answer.status_code != httpx.codes.OK:
            raise IdentityError(
                Reason.UNRESOLVABLE_DID, f"{did}: {url} answered {answer.status_code}"
            )
        try:
            document = json.loads(answer.body)
        except ValueError:
            raise IdentityError(Reason.MALFORMED_DOCUMENT, f"{did}: document is not JSON") from None
        return parse_document(document, did)
