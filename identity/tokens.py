"""DCP self-issued ID tokens (DCP 1.0, "Base Concepts"), and the access tokens they carry.

Validation follows the specification's steps, after checking that the token is an ID token at
all (``typ`` absent or JWT, no ``vp`` or ``vc`` claim): ``iss`` equals ``sub``; ``aud`` is us;
the key is found in the ``sub`` DID document (by ``kid``, which must belong to ``iss``; without
``kid`` only a document with exactly one verification method) and has the
``capabilityInvocation`` relationship; the document's id is ``sub`` (the resolver guarantees
it); ``nbf``, ``exp`` and ``iat`` against our clock with a small leeway; ``jti`` never seen
before, in a replay cache that outlives a restart (the caller passes it in; services keep it in
their database).

The access token in the ``token`` claim is ours to define (DCP leaves it opaque): a JWT the
holder signs for its own Credential Service, naming the scopes it grants and the one verifier
allowed to use it, so that a leaked access token is useless to anyone else.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Protocol

import anyio.to_thread

from identity.documents import DIDDocument
from identity.errors import IdentityError, Reason
from identity.jwt_sign import check_typ, key_id_of, self_issued_claims, sign, unverified, verify
from identity.keys import PrivateKey
from identity.resolver import DIDResolver
from identity.validity import LEEWAY_S, instant, numeric_date, required_date

ID_TOKEN_TYP: Final = "JWT"  # noqa: S105 - a media type, not a secret
ID_TOKEN_TYPS: Final = frozenset({"jwt"})
ACCESS_TOKEN_TYP: Final = "kexin-access+jwt"  # noqa: S105 - a media type
MAX_ID_TOKEN_BYTES: Final = 8 * 1024
SIGNING_ALGORITHMS: Final = frozenset({"EdDSA", "ES256"})
"""What our keys sign with (identity.keys.algorithm_of); any other ``alg`` is refused before the
signer's DID is resolved."""
MAX_TOKEN_AGE_S: Final = 3600
"""Tokens issued longer ago than this are refused, so that jti values need not be kept longer."""


class ReplayCache(Protocol):
    def first_use(self, issuer: str, jti: str, expires_at: datetime) -> bool:
        """Record the jti; False if it was already recorded."""
        ...


@dataclass(frozen=True)
class IdToken:
    issuer: str
    jti: str
    expires_at: datetime
    token: str | None
    """The ``token`` claim: an access token for the issuer's Credential Service, if any."""


def mint_id_token(
    *,
    issuer: str,
    key: PrivateKey,
    key_id: str,
    audience: str,
    now: datetime,
    lifetime: timedelta = timedelta(minutes=5),
    token: str | None = None,
) -> str:
    claims = self_issued_claims(issuer, audience, now, lifetime)
    if token is not None:
        claims["token"] = token
    return sign(claims, key, key_id, ID_TOKEN_TYP)


def _signing_key_id(header: dict[str, Any], issuer: str, document: DIDDocument) -> str:
    key_id = key_id_of(header, issuer)
    if key_id is not None:
        return key_id
    if len(document.verification_methods) == 1:
        return document.verification_methods[0].id
    raise IdentityError(Reason.MALFORMED_TOKEN, "no kid, and the DID document has several keys")


def _check_times(claims: dict[str, Any], now: datetime) -> datetime:
    timestamp = now.timestamp()
    expires = required_date(claims, "exp", now, Reason.MALFORMED_TOKEN)
    issued = required_date(claims, "iat", now, Reason.MALFORMED_TOKEN)
    not_before = numeric_date(claims, "nbf", now, Reason.MALFORMED_TOKEN)
    if timestamp >= expires + LEEWAY_S:
        raise IdentityError(Reason.EXPIRED_TOKEN, "the token has expired")
    if not_before is not None and timestamp + LEEWAY_S < not_before:
        raise IdentityError(Reason.EXPIRED_TOKEN, "the token is not valid yet")
    if issued > timestamp + LEEWAY_S or issued < timestamp - MAX_TOKEN_AGE_S:
        raise IdentityError(Reason.EXPIRED_TOKEN, "the token's iat is out of range")
    return instant(expires, now)


def _check_kind(header: dict[str, Any], claims: dict[str, Any]) -> None:
    """An ID token and no other JWT of ours. DCP 1.0, Base Concepts: "A Self-Issued ID Token is
    represented as a JSON Web Token [rfc7519]"; it names no ``typ``, so RFC 7519 5.1 applies:
    "If present, it is RECOMMENDED that its value be 'JWT'". So ``typ`` is absent or JWT; this
    refuses our access tokens (``kexin-access+jwt``: the holder signs them, addressed to itself,
    with the same key) and data-plane tokens. A presentation or credential, whose ``typ`` VC
    Data Model 1.1 also makes JWT, is refused by its ``vp`` or ``vc`` claim (RFC 8725 3.12:
    mutually exclusive validation rules for different kinds of JWT)."""
    check_typ(header, ID_TOKEN_TYPS, "a self-issued ID token")
    if "vp" in claims or "vc" in claims:
        raise IdentityError(Reason.MALFORMED_TOKEN, "a presentation or credential, not an ID token")


async def validate_id_token(
    raw: str, *, audience: str, resolver: DIDResolver, replay: ReplayCache, now: datetime
) -> IdToken:
    header, claims = unverified(raw, MAX_ID_TOKEN_BYTES)
    # 0. a self-issued ID token, not another kind of JWT
    _check_kind(header, claims)
    issuer, subject = claims.get("iss"), claims.get("sub")
    # 1. iss and sub are the same DID
    if not isinstance(issuer, str) or issuer != subject:
        raise IdentityError(Reason.WRONG_SUBJECT, "iss and sub must be the same DID")
    # 2. aud is the verifier's DID (checked again with the signature)
    aud = claims.get("aud")
    if aud != audience and not (isinstance(aud, list) and audience in aud):
        raise IdentityError(Reason.WRONG_AUDIENCE, f"the token is not for {audience}")
    # cheap checks before any network work (DCP lets the verifier order its checks): the
    # algorithm and the times as sent; the times are checked again once the signature holds
    if header.get("alg") not in SIGNING_ALGORITHMS:
        raise IdentityError(Reason.FORGED_SIGNATURE, "the token's algorithm is not accepted")
    _check_times(claims, now)
    # 3. + 4. the key comes from sub's DID document and has capabilityInvocation
    document = await resolver.resolve(issuer)
    key_id = _signing_key_id(header, issuer, document)
    verified = verify(raw, document, key_id, "capabilityInvocation", audience=audience)
    # 5. nbf, exp, iat
    expires_at = _check_times(verified, now)
    # 6. jti never seen before
    jti = verified.get("jti")
    if not isinstance(jti, str) or not jti or len(jti) > 200:
        raise IdentityError(Reason.MALFORMED_TOKEN, "jti is required")
    # a database write: in a worker thread, so that the event loop never waits for a lock
    first = await anyio.to_thread.run_sync(
        replay.first_use, issuer, jti, expires_at + timedelta(seconds=LEEWAY_S)
    )
    if not first:
        raise IdentityError(Reason.REPLAYED_TOKEN, f"token {jti} was used before")
    token = verified.get("token")
    return IdToken(issuer, jti, expires_at, token if isinstance(token, str) else None)


@dataclass(frozen=True)
class AccessGrant:
    holder: str
    verifier: str
    scopes: frozenset[str]


def mint_access_token(
    *,
    holder: str,
    key: PrivateKey,
    key_id: str,
    verifier: str,
    scopes: Sequence[str],
    now: datetime,
    lifetime: timedelta = timedelta(minutes=5),
) -> str:
    # Addressed to the holder itself: only its own Credential Service accepts it.
    claims = self_issued_claims(holder, holder, now, lifetime)
    claims.update(verifier=verifier, scope=" ".join(scopes))
    return sign(claims, key, key_id, ACCESS_TOKEN_TYP)


def check_access_token(
    raw: str, *, holder_document: DIDDocument, verifier: str, now: datetime
) -> AccessGrant:
    """The holder's Credential Service checks an access token it issued itself."""
    holder = holder_document.id
    try:
        header, claims = unverified(raw, MAX_ID_TOKEN_BYTES)
        if header.get("typ") != ACCESS_TOKEN_TYP or claims.get("iss") != holder:
            raise IdentityError(Reason.ACCESS_DENIED, "not an access token of this holder")
        key_id = key_id_of(header, holder)
        if key_id is None:
            raise IdentityError(Reason.ACCESS_DENIED, "access token without kid")
        verified = verify(raw, holder_document, key_id, "capabilityInvocation", audience=holder)
        _check_times(verified, now)
    except IdentityError as error:
        raise IdentityError(
            Reason.ACCESS_DENIED, f"access token refused: {error.message}"
        ) from None
    if verified.get("verifier") != verifier:
        raise IdentityError(Reason.ACCESS_DENIED, f"the access token was not granted to {verifier}")
    scope = verified.get("scope", "")
    return AccessGrant(holder, verifier, frozenset(str(scope).split()))
