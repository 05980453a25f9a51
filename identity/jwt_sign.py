"""Signing and checking compact JWS with a DID's keys: the one place pyjwt is used.

Only EdDSA (Ed25519) and ES256 (P-256) are accepted, and the algorithm must match the key
found in the signer's DID document; ``alg: none`` and HMAC never verify.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Final

import jwt

from identity.documents import DIDDocument
from identity.errors import IdentityError, Reason
from identity.keys import PrivateKey, PublicKey, algorithm_of

MAX_TOKEN_BYTES: Final = 64 * 1024


def self_issued_claims(
    issuer: str, audience: str, now: datetime, lifetime: timedelta
) -> dict[str, Any]:
    """The registered claims of a token a party issues about itself: ``iss`` = ``sub``, a fresh
    ``jti``, and ``iat``/``nbf``/``exp`` from ``now``."""
    return {
        "iss": issuer,
        "sub": issuer,
        "aud": audience,
        "jti": str(uuid.uuid4()),
        "iat": int(now.timestamp()),
        "nbf": int(now.timestamp()),
        "exp": int((now + lifetime).timestamp()),
    }


def sign(claims: Mapping[str, Any], key: PrivateKey, key_id: str, typ: str) -> str:
    return jwt.encode(
        dict(claims), key, algorithm=algorithm_of(key), headers={"kid": key_id, "typ": typ}
    )


def unverified(
    token: str, max_bytes: int = MAX_TOKEN_BYTES
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims, before any check; for finding the key. Malformed input raises.

    Read here rather than by pyjwt, which accepts and refuses the same compact forms (a test
    compares the two) but checks each character of each segment in a Python loop, and whose
    header and claims are two such reads: three reads of every token with the signature's
    check, about 2 ms of a connector's CPU per negotiation. What this gives is not trusted:
    :func:`verify_with_key` reads the token again with pyjwt as it checks the signature, and
    callers that rely on the claims use the ones :func:`verify` or :func:`verify_with_key`
    return, never these."""
    if not isinstance(token, str) or len(token) > max_bytes:
        raise IdentityError(Reason.OVERSIZED_TOKEN, f"a token is at most {max_bytes} bytes")
    try:
        header_segment, payload_segment, signature_segment = token.encode().split(b".")
    except (ValueError, UnicodeEncodeError):
        raise IdentityError(Reason.MALFORMED_TOKEN, "not a JWT: not three segments") from None
    header = _json_object(header_segment, "header")
    if header.get("b64", True) is False:
        raise IdentityError(Reason.MALFORMED_TOKEN, "not a JWT: a detached payload")
    if "kid" in header and not isinstance(header["kid"], str):
        raise IdentityError(Reason.MALFORMED_TOKEN, "not a JWT: kid is not a string")
    if "crit" in header:
        _check_crit(header)
    claims = _json_object(payload_segment, "payload")
    _base64url(signature_segment, "signature")
    return header, claims


_BASE64URL: Final = re.compile(rb"[A-Za-z0-9_-]*")
_SUPPORTED_CRIT: Final = frozenset({"b64"})
"""The critical header extensions pyjwt knows (RFC 7797's b64; RFC 7515 4.1.11: any other
makes the token invalid)."""


def _check_crit(header: dict[str, Any]) -> None:
    crit = header["crit"]
    if (
        not isinstance(crit, list)
        or not crit
        or not all(isinstance(name, str) and name in _SUPPORTED_CRIT for name in crit)
        or not all(name in header for name in crit)
    ):
        raise IdentityError(Reason.MALFORMED_TOKEN, "not a JWT: an unsupported crit header")


def _base64url(segment: bytes, name: str) -> bytes:
    """A segment's bytes; base64url without padding, or with the padding pyjwt accepts."""
    stripped = segment.rstrip(b"=")
    padding = len(segment) - len(stripped)
    if (
        padding > 2
        or (padding and len(segment) % 4)
        or len(stripped) % 4 == 1
        or not _BASE64URL.fullmatch(stripped)
    ):
        raise IdentityError(Reason.MALFORMED_TOKEN, f"not a JWT: the {name} is not base64url")
    decoded = base64.urlsafe_b64decode(stripped + b"=" * (-len(stripped) % 4))
    if base64.urlsafe_b64encode(decoded).rstrip(b"=") != stripped:  # stray bits: one form only
        raise IdentityError(Reason.MALFORMED_TOKEN, f"not a JWT: the {name} is not base64url")
    return decoded


def _json_object(segment: bytes, name: str) -> dict[str, Any]:
    try:
        value = json.loads(_base64url(segment, name))
    except (ValueError, RecursionError):
        raise IdentityError(Reason.MALFORMED_TOKEN, f"not a JWT: the {name} is not JSON") from None
    if not isinstance(value, dict):
        raise IdentityError(Reason.MALFORMED_TOKEN, f"not a JWT: the {name} is not an object")
    return value


def check_typ(header: Mapping[str, Any], accepted: frozenset[str], what: str) -> None:
    """The JOSE ``typ`` header, absent or one of ``accepted`` (lower case). RFC 7515, 4.1.9:
    media type names are compared case-insensitively, and "application/" may be omitted."""
    typ = header.get("typ")
    if typ is None:
        return
    name = typ.lower().removeprefix("application/") if isinstance(typ, str) else None
    if name not in accepted:
        raise IdentityError(Reason.MALFORMED_TOKEN, f"typ {typ!r} is not that of {what}")


def key_id_of(header: Mapping[str, Any], issuer: str) -> str | None:
    """The ``kid`` as an absolute method id of ``issuer``; a kid of another DID is refused."""
    kid = header.get("kid")
    if kid is None:
        return None
    if not isinstance(kid, str):
        raise IdentityError(Reason.MALFORMED_TOKEN, "kid must be a string")
    absolute = issuer + kid if kid.startswith("#") else kid
    if absolute.split("#", 1)[0] != issuer:
        raise IdentityError(Reason.FOREIGN_KEY, f"key {kid} does not belong to {issuer}")
    return absolute


def verify(
    token: str,
    document: DIDDocument,
    key_id: str,
    relationship: str,
    *,
    audience: str | None = None,
) -> dict[str, Any]:
    """Check the signature with ``key_id`` of ``document`` under ``relationship``; return claims.

    Time claims are not checked here: callers check them against their own clock.
    """
    method = document.method(key_id, relationship)
    return verify_with_key(token, method.public_key, audience)


def verify_with_key(token: str, key: PublicKey, audience: str | None) -> dict[str, Any]:
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[algorithm_of(key)],
            audience=audience,
            options={
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
                "verify_aud": audience is not None,
            },
        )
    except jwt.InvalidAudienceError:
        raise IdentityError(Reason.WRONG_AUDIENCE, f"the token is not for {audience}") from None
    except jwt.InvalidAlgorithmError:
        raise IdentityError(Reason.FORGED_SIGNATURE, "algorithm does not match the key") from None
    except jwt.PyJWTError as error:
        raise IdentityError(Reason.FORGED_SIGNATURE, f"signature check failed: {error}") from None
    return claims
