"""StatusList2021 revocation: the issuer publishes a bitstring; verifiers fetch and cache it.

The list is a StatusList2021Credential (a VC JWT signed by the issuer) whose ``encodedList`` is
the GZIP-compressed, base64url-encoded bitstring (at least 16 KiB, 131,072 entries; bit 0 is the
most significant bit of the first byte). Verifiers fetch it from the ``statusListCredential``
address (under a total deadline, the size capped while reading), check the issuer's signature,
check that it is a current revocation StatusList2021Credential (type, purpose, validity period,
and issued at most a day ago) and keep it for a TTL, never past its own validity: a revocation
is seen once the cache refreshes. A list that cannot be fetched or verified, or is stale, makes
the credential fail (closed).
"""

from __future__ import annotations

import base64
import gzip
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import httpx

from identity.errors import IdentityError, Reason
from identity.fetch import FETCH_DEADLINE_S, Limits, fetch
from identity.jwt_sign import key_id_of, sign, unverified, verify
from identity.keys import PrivateKey
from identity.resolver import DIDResolver
from identity.validity import LEEWAY_S, numeric_date, required_date

LIST_BITS: Final = 131_072
MAX_LIST_BYTES: Final = 1 << 20
VC_CONTEXT: Final = "https://www.w3.org/2018/credentials/v1"
STATUS_CONTEXT: Final = "https://w3id.org/vc/status-list/2021/v1"
STATUS_TYP: Final = "vc+jwt"
MAX_LIST_AGE_S: Final = 24 * 3600
"""A status list issued longer ago than this (a day) is stale, expiry or not. Our authority signs
its list afresh for every request; a list this old is a replay or a stopped issuer."""


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


def clear_bit(bits: bytearray, index: int) -> None:
    bits[index // 8] &= ~(0x80 >> (index % 8)) & 0xFF


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


def current_list(claims: Mapping[str, Any], issuer: str, now: datetime, max_age_s: float) -> float:
    """Check that verified status-list claims are a current revocation StatusList2021Credential
    of ``issuer``; return how many more seconds it may be used.

    StatusList2021 (W3C CCG, 2023-04-27), 2.2: the credential "MUST express a type property that
    includes the StatusList2021Credential value"; its "credentialSubject.type [...] MUST be
    StatusList2021"; validation: "Verify that the status purpose matches the statusPurpose value
    in the statusListCredential" (ours: revocation). Its validity period is that of any VC 1.1
    credential (VC Data Model 1.1, 6.3.1: "nbf MUST represent issuanceDate", "exp MUST represent
    the expirationDate property"): not before ``nbf``, not after ``exp``. A list without an
    expiry would otherwise stay current for ever, and a replayed old list would hide every
    revocation made since: so a list issued more than ``max_age_s`` ago is stale too."""
    vc = claims.get("vc")
    if not isinstance(vc, dict) or "StatusList2021Credential" not in _as_list(vc.get("type")):
        raise IdentityError(Reason.STATUS_UNAVAILABLE, "not a StatusList2021Credential")
    if vc.get("issuer", issuer) not in (issuer, {"id": issuer}):
        raise IdentityError(Reason.STATUS_UNAVAILABLE, "vc.issuer and iss disagree")
    subject = vc.get("credentialSubject")
    if not isinstance(subject, dict) or subject.get("type") != "StatusList2021":
        raise IdentityError(Reason.STATUS_UNAVAILABLE, "credentialSubject is not a StatusList2021")
    if subject.get("statusPurpose") != "revocation":
        raise IdentityError(Reason.STATUS_UNAVAILABLE, "not a revocation status list")
    issued = required_date(claims, "nbf", now, Reason.STATUS_UNAVAILABLE)
    expires = numeric_date(claims, "exp", now, Reason.STATUS_UNAVAILABLE)
    numeric_date(claims, "iat", now, Reason.STATUS_UNAVAILABLE)
    timestamp = now.timestamp()
    if timestamp + LEEWAY_S < issued:
        raise IdentityError(Reason.STATUS_UNAVAILABLE, "the status list is not valid yet")
    usable_until = issued + max_age_s if expires is None else min(expires, issued + max_age_s)
    if timestamp >= usable_until + LEEWAY_S:
        raise IdentityError(
            Reason.STATUS_UNAVAILABLE, "the status list has expired or is older than allowed"
        )
    return max(usable_until - timestamp, 0.0)


def _as_list(value: object) -> list[object]:
    return value if isinstance(value, list) else [value]


class StatusListCache:
    """Fetches, verifies and caches status lists; answers "is this credential revoked?".

    A list is kept for at most ``ttl_s`` and never past its own validity (``exp``, or issuance
    plus ``max_age_s``); ``now`` is the wall clock that list times are compared with."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        resolver: DIDResolver,
        *,
        ttl_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        max_age_s: float = MAX_LIST_AGE_S,
        deadline_s: float = FETCH_DEADLINE_S,
    ) -> None:
        self._client = client
        self._resolver = resolver
        self._ttl_s = ttl_s
        self._clock = clock
        self._now = now
        self._max_age_s = max_age_s
        self._deadline_s = deadline_s
        self._lists: dict[tuple[str, str], tuple[float, bytes]] = {}

    async def is_revoked(self, entry: StatusEntry, issuer: str) -> bool:
        now = self._clock()
        cached = self._lists.get((entry.list_url, issuer))
        if cached is None or cached[0] <= now:
            bits, usable_s = await self._fetch(entry.list_url, issuer)
            cached = (now + min(self._ttl_s, usable_s), bits)
            self._lists[entry.list_url, issuer] = cached
        return is_set(cached[1], entry.index)

    async def _fetch(self, url: str, issuer: str) -> tuple[bytes, float]:
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
        usable_s = current_list(verified, issuer, self._now(), self._max_age_s)
        encoded = verified["vc"]["credentialSubject"].get("encodedList")
        if not isinstance(encoded, str):
            raise IdentityError(Reason.STATUS_UNAVAILABLE, "status list without encodedList")
        return decode_bits(encoded), usable_s
