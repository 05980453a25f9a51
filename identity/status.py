"""StatusList2021 revocation: the issuer publishes a bitstring; verifiers fetch and cache it.

The list is a StatusList2021Credential (a VC JWT signed by the issuer) whose ``encodedList`` is
the GZIP-compressed, base64url-encoded bitstring (at least 16 KiB, 131,072 entries; bit 0 is the
most significant bit of the first byte). Verifiers fetch it from the ``statusListCredential``
address (under a total deadline, the size capped while reading), check the issuer's signature,
and keep it for a TTL: a revocation is seen once the cache refreshes. A list that cannot be
fetched or verified makes the credential fail (closed).
"""

from __future__ import annotations

import base64
import gzip
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import httpx

from identity.errors import IdentityError, Reason
from identity.fetch import FETCH_DEADLINE_S, Limits, fetch
from identity.jwt_sign import key_id_of, sign, unverified, verify
from identity.keys import PrivateKey
from identity.resolver import DIDResolver

LIST_BITS: Final = 131_072
MAX_LIST_BYTES: Final = 1 << 20
VC_CONTEXT: Final = "https://www.w3.org/2018/credentials/v1"
STATUS_CONTEXT: Final = "https://w3id.org/vc/status-list/2021/v1"
STATUS_TYP: Final = "vc+jwt"


@dataclass(frozen=True)
class StatusEntry:
    """A credential's ``credentialStatus`` (StatusList2021Entry, purpose revocation)."""

    list_url: str
    index: int

    def to_json(self) -> dict[str, str]:
        return {
            "id": f"{self.list_url}#{self.index}",
            "type": "StatusList2021Entry",
            "statusPurpose": "revocation",
            "statusListIndex": str(self.index),
            "statusListCredential": self.list_url,
        }

    @classmethod
    def from_json(cls, node: object) -> StatusEntry:
        if not isinstance(node, dict) or node.get("type") != "StatusList2021Entry":
            raise IdentityError(
                Reason.INVALID_CREDENTIAL, "credentialStatus is not a StatusList2021Entry"
            )
        if node.get("statusPurpose") != "revocation":
            raise IdentityError(Reason.INVALID_CREDENTIAL, "only revocation status is understood")
        url, index = node.get("statusListCredential"), node.get("statusListIndex")
        if not isinstance(url, str) or not isinstance(index, str) or not index.isdigit():
            raise IdentityError(Reason.INVALID_CREDENTIAL, "malformed credentialStatus")
        if int(index) >= LIST_BITS * 8:
            raise IdentityError(Reason.INVALID_CREDENTIAL, "statusListIndex out of range")
        return cls(url, int(index))


def encode_bits(bits: bytes) -> str:
    return base64.urlsafe_b64encode(gzip.compress(bits)).rstrip(b"=").decode()


def decode_bits(encoded: str) -> bytes:
    try:
        compressed = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        inflater = zlib.decompressobj(wbits=31)
        bits = inflater.decompress(compressed, MAX_LIST_BYTES)
    except (ValueError, zlib.error):
        raise IdentityError(
            Reason.STATUS_UNAVAILABLE, "encodedList is not gzip+base64url"
        ) from None
    if inflater.unconsumed_tail:
        raise IdentityError(Reason.STATUS_UNAVAILABLE, "status list too large")
    return bits


def is_set(bits: bytes, index: int) -> bool:
    byte = index // 8
    if byte >= len(bits):
        raise IdentityError(Reason.STATUS_UNAVAILABLE, "statusListIndex beyond the list")
    return bool(bits[byte] & (0x80 >> (index % 8)))


def set_bit(bits: bytearray, index: int) -> None:
    bits[index // 8] |= 0x80 >> (index % 8)


def issue_status_list(
    issuer: str, key: PrivateKey, key_id: str, list_url: str, bits: bytes, issued_at: datetime
) -> str:
    when = int(issued_at.timestamp())
    return sign(
        {
            "iss": issuer,
            "sub": f"{list_url}#list",
            "iat": when,
            "nbf": when,
            "jti": list_url,
            "vc": {
                "@context": [VC_CONTEXT, STATUS_CONTEXT],
                "type": ["VerifiableCredential", "StatusList2021Credential"],
                "issuer": issuer,
                "issuanceDate": issued_at.isoformat(),
                "credentialSubject": {
                    "id": f"{list_url}#list",
                    "type": "StatusList2021",
                    "statusPurpose": "revocation",
                    "encodedList": encode_bits(bits),
                },
            },
        },
        key,
        key_id,
        STATUS_TYP,
    )


class StatusListCache:
    """Fetches, verifies and caches status lists; answers "is this credential revoked?"."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        resolver: DIDResolver,
        *,
        ttl_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        deadline_s: float = FETCH_DEADLINE_S,
    ) -> None:
        self._client = client
        self._deadline_s = deadline_s
        self._resolver = resolver
        self._ttl_s = ttl_s
        self._clock = clock
        self._lists: dict[tuple[str, str], tuple[float, bytes]] = {}

    async def is_revoked(self, entry: StatusEntry, issuer: str) -> bool:
        now = self._clock()
        cached = self._lists.get((entry.list_url, issuer))
        if cached is None or cached[0] <= now:
            bits = await self._fetch(entry.list_url, issuer)
            cached = (now + self._ttl_s, bits)
            self._lists[entry.list_url, issuer] = cached
        return is_set(cached[1], entry.index)

    async def _fetch(self, url: str, issuer: str) -> bytes:
        answer = await fetch(
            self._client, "GET", url, Limits(MAX_LIST_BYTES, self._deadline_s),
            unavailable=Reason.STATUS_UNAVAILABLE, oversized=Reason.STATUS_UNAVAILABLE,
        )  # fmt: skip
        if answer.status_code != httpx.codes.OK:
            raise IdentityError(Reason.STATUS_UNAVAILABLE, f"{url} answered {answer.status_code}")
        try:
            token = answer.body.decode().strip()
        except UnicodeDecodeError:
            raise IdentityError(Reason.STATUS_UNAVAILABLE, f"{url}: not a JWT") from None
        header, claims = unverified(token, MAX_LIST_BYTES)
        if claims.get("iss") != issuer:
            raise IdentityError(Reason.STATUS_UNAVAILABLE, f"status list {url} is not {issuer}'s")
        key_id = key_id_of(header, issuer)
        if key_id is None:
            raise IdentityError(Reason.STATUS_UNAVAILABLE, "status list without kid")
        document = await self._resolver.resolve(issuer)
        verified = verify(token, document, key_id, "assertionMethod")
        subject: Any = verified.get("vc", {}).get("credentialSubject", {})
        if not isinstance(subject, dict) or subject.get("statusPurpose") != "revocation":
            raise IdentityError(Reason.STATUS_UNAVAILABLE, "not a revocation status list")
        encoded = subject.get("encodedList")
        if not isinstance(encoded, str):
            raise IdentityError(Reason.STATUS_UNAVAILABLE, "status list without encodedList")
        return decode_bits(encoded)
