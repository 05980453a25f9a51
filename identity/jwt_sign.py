"""Signing and checking compact JWS with a DID's keys: the one place pyjwt is used.

Only EdDSA (Ed25519) and ES256 (P-256) are accepted, and the algorithm must match the key
found in the signer's DID document; ``alg: none`` and HMAC never verify.
"""

from __future__ import annotations

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
    """Header and claims, before any check; for finding the key. Malformed input raises."""
    if not isinstance(token, str) or len(token) > max_bytes:
        raise IdentityError(Reason.OVERSIZED_TOKEN, f"a token is at most {max_bytes} bytes")
    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as error:
        raise IdentityError(Reason.MALFORMED_TOKEN, f"not a JWT: {error}") from None
    if not isinstance(claims, dict):
        raise IdentityError(Reason.MALFORMED_TOKEN, "JWT claims must be an object")
    return header, claims


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
