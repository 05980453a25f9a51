"""Signed statements: a party's signed word that it did something (e.g. deleted the data).

A statement is a compact JWS (``typ`` ``kexin-statement+jwt``) signed with EdDSA (Ed25519) or
ES256 (P-256); ``iss`` is the signer's DID and ``kid`` names the key, which must belong to
``iss``. Verification looks the key up through a function the caller passes in (for example the
signer's DID document) and checks the signature. This module does not resolve DIDs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

from identity.errors import IdentityError
from identity.jwt_sign import key_id_of, sign, unverified, verify_with_key
from identity.keys import PrivateKey, PublicKey
from policy.duties import SignedStatement

TYPE: Final = "kexin-statement+jwt"
MAX_STATEMENT_BYTES: Final = 16 * 1024

KeyLookup = Callable[[str], PublicKey]
"""kid (``did#fragment``) -> the public key, raising KeyError when unknown."""


class StatementError(ValueError):
    """A statement that is not valid: malformed, unsigned by its issuer, or tampered with."""


def sign_statement(claims: Mapping[str, object], issuer: str, key: PrivateKey, key_id: str) -> str:
    if not key_id.startswith(issuer + "#"):
        raise ValueError("the key id must be a fragment of the issuer's DID")
    return sign({**claims, "iss": issuer}, key, key_id, TYPE)


def verify_statement(token: str, public_key_for: KeyLookup) -> SignedStatement:
    try:
        header, unverified_claims = unverified(token, MAX_STATEMENT_BYTES)
        if header.get("typ") != TYPE:
            raise StatementError("not a Kexin statement")
        issuer = unverified_claims.get("iss")
        if not isinstance(issuer, str):
            raise StatementError("a statement needs iss and kid")
        key_id = key_id_of(header, issuer)
        if key_id is None:
            raise StatementError("a statement needs iss and kid")
        try:
            public_key = public_key_for(key_id)
        except KeyError:
            raise StatementError(f"unknown key {key_id}") from None
        claims = verify_with_key(token, public_key, None)
    except IdentityError as error:
        raise StatementError(str(error)) from None
    return SignedStatement(issuer=issuer, claims=claims)
