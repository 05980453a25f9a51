"""DID resolution: ``did:web`` over HTTP(S) with timeouts, a size limit and a cache; ``did:key``
and ``did:jwk`` from the DID itself. No other method resolves.

``did:web:127.0.0.1%3A8101:bank`` is fetched from ``https://127.0.0.1:8101/bank/did.json``;
``did:web:example.cn`` from ``https://example.cn/.well-known/did.json``. Plain HTTP is used only
when ``allow_http`` is set (loopback test and demo set-ups); the did:web method requires HTTPS.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Final
from urllib.parse import unquote

import httpx

from identity.did import DIDSyntaxError, check_did
from identity.documents import DIDDocument, did_jwk_document, did_key_document, parse_document
from identity.errors import IdentityError, Reason

MAX_DOCUMENT_BYTES: Final = 64 * 1024


def did_web_url(did: str, *, allow_http: bool = False) -> str:
    """The address of a did:web document (did:web method specification, section 3.2)."""
    parts = did.split(":")[2:]
    host = unquote(parts[0])
    if not host or any(c in host for c in "/@?#\\ ") or host.startswith("."):
        raise IdentityError(Reason.MALFORMED_DID, f"{did}: not a valid did:web host")
    path = [unquote(p) for p in parts[1:]]
    if any(not p or "/" in p or p in (".", "..") for p in path):
        raise IdentityError(Reason.MALFORMED_DID, f"{did}: not a valid did:web path")
    scheme = "http" if allow_http else "https"
    suffix = "/".join(path) + "/did.json" if path else ".well-known/did.json"
    return f"{scheme}://{host}/{suffix}"


class DIDResolver:
    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        cache_ttl_s: float = 300.0,
        allow_http: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._ttl_s = cache_ttl_s
        self._allow_http = allow_http
        self._clock = clock
        self._cache: dict[str, tuple[float, DIDDocument]] = {}

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
        document = await self._fetch(did)
        self._cache[did] = (now + self._ttl_s, document)
        return document

    def forget(self, did: str) -> None:
        self._cache.pop(did, None)

    async def _fetch(self, did: str) -> DIDDocument:
        url = did_web_url(did, allow_http=self._allow_http)
        try:
            async with self._client.stream("GET", url, follow_redirects=False) as response:
                if response.status_code != httpx.codes.OK:
                    raise IdentityError(
                        Reason.UNRESOLVABLE_DID, f"{did}: {url} answered {response.status_code}"
                    )
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_DOCUMENT_BYTES:
                        raise IdentityError(
                            Reason.MALFORMED_DOCUMENT,
                            f"{did}: document over {MAX_DOCUMENT_BYTES} bytes",
                        )
        except httpx.HTTPError as error:
            raise IdentityError(Reason.UNRESOLVABLE_DID, f"{did}: {url}: {error!r}") from None
        try:
            document = json.loads(body)
        except ValueError:
            raise IdentityError(Reason.MALFORMED_DOCUMENT, f"{did}: document is not JSON") from None
        return parse_document(document, did)
