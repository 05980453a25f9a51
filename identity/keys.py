"""Participant keys: Ed25519 and P-256 through ``cryptography``; JWKs; encryption at rest.

A private key is stored only as encrypted PKCS#8 (``BestAvailableEncryption``, a passphrase from
settings). JWS algorithms: EdDSA for Ed25519, ES256 for P-256. Nothing else is accepted.
"""

from __future__ import annotations

import base64
from enum import StrEnum
from typing import Any, Final

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

PrivateKey = Ed25519PrivateKey | ec.EllipticCurvePrivateKey
PublicKey = Ed25519PublicKey | ec.EllipticCurvePublicKey

MIN_PASSPHRASE_CHARS: Final = 12


class KeyType(StrEnum):
    ED25519 = "Ed25519"
    P256 = "P-256"


class KeyMaterialError(ValueError):
    """Key material that cannot be used: wrong curve, malformed JWK, wrong passphrase."""


def generate(key_type: KeyType) -> PrivateKey:
    if key_type is KeyType.ED25519:
        return Ed25519PrivateKey.generate()
    return ec.generate_private_key(ec.SECP256R1())


def key_type_of(key: PrivateKey | PublicKey) -> KeyType:
    return (
        KeyType.ED25519 if isinstance(key, Ed25519PrivateKey | Ed25519PublicKey) else KeyType.P256
    )


def algorithm_of(key: PrivateKey | PublicKey) -> str:
    return "EdDSA" if key_type_of(key) is KeyType.ED25519 else "ES256"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: object) -> bytes:
    if not isinstance(text, str):
        raise KeyMaterialError("JWK member is not a string")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError:
        raise KeyMaterialError("JWK member is not base64url") from None


def public_jwk(key: PrivateKey | PublicKey) -> dict[str, str]:
    public = (
        key.public_key() if isinstance(key, Ed25519PrivateKey | ec.EllipticCurvePrivateKey) else key
    )
    if isinstance(public, Ed25519PublicKey):
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"kty": "OKP", "crv": "Ed25519", "x": _b64(raw)}
    numbers = public.public_numbers()
    if not isinstance(public.curve, ec.SECP256R1):
        raise KeyMaterialError("only P-256 EC keys are supported")
    return {
        "kty": "EC",
        "crv": "P-256",
        "x": _b64(numbers.x.to_bytes(32, "big")),
        "y": _b64(numbers.y.to_bytes(32, "big")),
    }


def public_key_from_jwk(jwk: Any) -> PublicKey:
    """A public key from a JWK; refuses anything but Ed25519 and P-256."""
    if not isinstance(jwk, dict):
        raise KeyMaterialError("a JWK must be an object")
    kty, crv = jwk.get("kty"), jwk.get("crv")
    if kty == "OKP" and crv == "Ed25519":
        raw = _unb64(jwk.get("x"))
        if len(raw) != 32:
            raise KeyMaterialError("an Ed25519 key is 32 bytes")
        return Ed25519PublicKey.from_public_bytes(raw)
    if kty == "EC" and crv == "P-256":
        x, y = _unb64(jwk.get("x")), _unb64(jwk.get("y"))
        if len(x) != 32 or len(y) != 32:
            raise KeyMaterialError("P-256 coordinates are 32 bytes")
        numbers = ec.EllipticCurvePublicNumbers(
            int.from_bytes(x, "big"), int.from_bytes(y, "big"), ec.SECP256R1()
        )
        try:
            return numbers.public_key()
        except ValueError:
            raise KeyMaterialError("the point is not on the P-256 curve") from None
    raise KeyMaterialError(f"unsupported key type {kty}/{crv}; use OKP/Ed25519 or EC/P-256")


def encrypt(key: PrivateKey, passphrase: str) -> bytes:
    if len(passphrase) < MIN_PASSPHRASE_CHARS:
        raise KeyMaterialError(
            f"the key passphrase must be at least {MIN_PASSPHRASE_CHARS} characters"
        )
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase.encode()),
    )


def decrypt(pem: bytes, passphrase: str) -> PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=passphrase.encode())
    except (ValueError, TypeError):
        raise KeyMaterialError(
            "cannot decrypt the stored key: wrong passphrase or damaged key"
        ) from None
    if isinstance(key, Ed25519PrivateKey) or (
        isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1)
    ):
        return key
    raise KeyMaterialError("stored key is of an unsupported type")
