"""Signed statements: a party's signed word that it did something (e.g. deleted the data).

A statement is a compact JWS (a JWT, ``typ`` ``kexin-statement+jwt``) signed with EdDSA
(Ed25519) or ES256 (P-256); ``iss`` is the signer's DID and ``kid`` names the key. Verification
looks the key up through a function the caller passes in (a DID resolver, later), checks that
the ``kid`` belongs to ``iss``, and checks the signature. This module does not resolve DIDs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

import jwt
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from policy.duties import SignedStatement

TYPE: Final = "kexin-statement+jwt"
ALGORITHMS: Final = ("EdDSA", "ES256")
MAX_STATEMENT_BYTES: Final = 16 * 1024

PrivateKey = Ed25519PrivateKey | EllipticCurvePrivateKey
KeyLookup = Callable[[str], Any]
"""kid (``did#fragment``) -> the public key, raising KeyError when unknown."""


class StatementError(ValueError):
    """A statement that is not valid: malformed, unsigned by its issuer, or tampered with."""


def sign_statement(claims: Mapping[str, object], issuer: str, key: PrivateKey, key_id: str) -> str:
    if not key_id.startswith(issuer + "#"):
        raise ValueError("the key id must be a fragment of the issuer's DID")
    algorithm = "EdDSA" if isinstance(key, Ed25519PrivateKey) else "ES256"
    return jwt.encode(
        {**claims, "iss": issuer},
        key,
        algorithm=algorithm,
        headers={"kid": key_id, "typ": TYPE},
    )


def verify_statement(token: str, public_key_for: KeyLookup) -> SignedStatement:
    if len(token) > MAX_STATEMENT_BYTES:
        raise StatementError("statement too large")
    try:
        header = jwt.get_unverified_header(token)
        unverified = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as error:
        raise StatementError(f"malformed statement: {error}") from None
    issuer, key_id, algorithm = unverified.get("iss"), header.get("kid"), header.get("alg")
    if header.get("typ") != TYPE:
        raise StatementError("not a Kexin statement")
    if algorithm not in ALGORITHMS:
        raise StatementError(f"algorithm {algorithm!r} is not accepted")
    if not isinstance(issuer, str) or not isinstance(key_id, str):
        raise StatementError("a statement needs iss and kid")
    if not key_id.startswith(issuer + "#"):
        raise StatementError(f"key {key_id} does not belong to {issuer}")
    try:
        public_key = public_key_for(key_id)
    except KeyError:
        raise StatementError(f"unknown key {key_id}") from None
    try:
        claims = jwt.decode(token, public_key, algorithms=[algorithm], options={"require": ["iss"]})
    except jwt.PyJWTError as error:
        raise StatementError(f"invalid statement: {error}") from None
    return SignedStatement(issuer=issuer, claims=claims)
