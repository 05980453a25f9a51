"""Endpoint data reference (EDR) tokens: short-lived bearer JWTs that the provider signs with
its own key, bound to one agreement, one transfer process, the consumer's DID and a token
generation (raising the generation revokes every token issued before).

Time claims must be NumericDates within 100 years of now (``identity.validity``); any other
value, NaN included, makes the token ``invalid_token``. Refresh tokens are random and opaque;
only their SHA-256 is stored. Pure apart from the clock passed in; the provider's keys come
from the caller.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from identity.documents import DIDDocument
from identity.errors import IdentityError, Reason
from identity.jwt_sign import key_id_of, sign, unverified, verify
from identity.keyring import SigningKey
from identity.validity import numeric_date, required_date

TYP: Final = "kexin-edr+jwt"
MAX_TOKEN_BYTES: Final = 8 * 1024
NOT_BEFORE_LEEWAY_S: Final = 5


class TokenError(Exception):
    """A token that does not let its bearer in: ``code`` says why (for the typed error)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


@dataclass(frozen=True)
class AccessToken:
    transfer_id: str
    agreement_id: str
    consumer: str
    generation: int
    expires_at: datetime


def audience(provider: str) -> str:
    return f"{provider}#dataplane"


def issue(
    key: SigningKey,
    provider: str,
    grant: AccessToken,
    now: datetime,
) -> str:
    claims = {
        "iss": provider,
        "sub": grant.consumer,
        "aud": audience(provider),
        "jti": str(uuid.uuid4()),
        "iat": int(now.timestamp()),
        "nbf": int(now.timestamp()),
        "exp": int(grant.expires_at.timestamp()),
        "agreementId": grant.agreement_id,
        "transferId": grant.transfer_id,
        "gen": grant.generation,
    }
    return sign(claims, key.private_key, key.key_id, TYP)


def read(
    token: str, provider: str, document: DIDDocument, now: datetime, *, allow_expired: bool = False
) -> AccessToken:
    """The grant a token carries, if we signed it and it is still valid (or merely expired,
    when ``allow_expired``: a refresh presents the token it replaces)."""
    try:
        header, claims = unverified(token, MAX_TOKEN_BYTES)
        if header.get("typ") != TYP:
            raise TokenError("invalid_token", "not a data-plane token")
        if claims.get("iss") != provider:
            raise TokenError("foreign_token", "this token was not issued here")
        key_id = key_id_of(header, provider)
        if key_id is None:
            raise TokenError("invalid_token", "a token needs a kid")
        verified = verify(token, document, key_id, "assertionMethod", audience=audience(provider))
        expires = required_date(verified, "exp", now, Reason.MALFORMED_TOKEN)
        not_before = numeric_date(verified, "nbf", now, Reason.MALFORMED_TOKEN)
        numeric_date(verified, "iat", now, Reason.MALFORMED_TOKEN)
    except IdentityError as error:
        raise TokenError("invalid_token", error.message) from None
    grant = _grant(verified, datetime.fromtimestamp(expires, UTC))
    if not allow_expired and now.timestamp() >= expires:
        raise TokenError("expired_token", "the token has expired; refresh it")
    if not_before is not None and now.timestamp() + NOT_BEFORE_LEEWAY_S < not_before:
        raise TokenError("invalid_token", "the token is not valid yet")
    return grant


def _grant(claims: dict[str, Any], expires_at: datetime) -> AccessToken:
    transfer, agreement, consumer = (
        claims.get("transferId"),
        claims.get("agreementId"),
        claims.get("sub"),
    )
    generation = claims.get("gen")
    if not (
        isinstance(transfer, str)
        and isinstance(agreement, str)
        and isinstance(consumer, str)
        and isinstance(generation, int)
        and not isinstance(generation, bool)
    ):
        raise TokenError("invalid_token", "the token lacks its transfer, agreement or generation")
    return AccessToken(transfer, agreement, consumer, generation, expires_at)


def new_refresh_token() -> tuple[str, str]:
    """A fresh refresh token and the hash to store."""
    token = secrets.token_urlsafe(32)
    return token, refresh_hash(token)


def refresh_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
