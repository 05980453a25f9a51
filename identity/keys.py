"""Participant keys: Ed25519 and P-256 through ``cryptography``; JWKs; encryption at rest.

A private key is stored only wrapped: its PKCS#8 encoding encrypted with AES-256-GCM under a
wrapping key derived from the passphrase (from settings) with scrypt (RFC 7914; OWASP's
parameters by default: N=2^17, r=8, p=1). The KDF, its parameters and salt are stored beside
each wrapped key, so that they can change later. Keys written before (encrypted PKCS#8, whose
PBES2 uses PBKDF2-HMAC-SHA256 at 2,048 iterations) are still read, to be re-wrapped. A derived
wrapping key is kept for the life of the process: scrypt runs once per start, not per key use,
and in a short-lived child process, so that its 128 MiB are not the server's.
JWS algorithms: EdDSA for Ed25519, ES256 for P-256. Nothing else is accepted.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

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


class Kdf(StrEnum):
    """How a stored private key is wrapped."""

    SCRYPT = "scrypt"
    """scrypt, then AES-256-GCM; parameters and salt in ``kdf_params``."""
    PKCS8 = "pkcs8"
    """Before: encrypted PKCS#8 PEM (PBKDF2-HMAC-SHA256, 2,048 iterations), read to re-wrap."""


SALT_BYTES: Final = 16
NONCE_BYTES: Final = 12
WRAPPING_KEY_BYTES: Final = 32
MAX_LOG2_N: Final = 20
MAX_SCRYPT_BYTES: Final = 1 << 30
"""scrypt needs 128 * r * N bytes (N=2^20 with r=8: 1 GiB): stored parameters asking for more
are refused, not computed."""


@dataclass(frozen=True)
class ScryptCost:
    """scrypt's cost parameters: N = 2**log2_n, block size r, parallelism p."""

    log2_n: int = 17
    r: int = 8
    p: int = 1

    def __post_init__(self) -> None:
        in_range = 1 <= self.log2_n <= MAX_LOG2_N and 1 <= self.r <= 32 and 1 <= self.p <= 16
        if not in_range or 128 * self.r * 2**self.log2_n > MAX_SCRYPT_BYTES:
            raise KeyMaterialError(
                f"scrypt parameters out of range: N=2^{self.log2_n}, r={self.r}, p={self.p}"
            )


OWASP_SCRYPT: Final = ScryptCost()
"""OWASP's Password Storage Cheat Sheet: scrypt with N=2^17 (128 MiB), r=8, p=1."""


@dataclass(frozen=True)
class WrappingKey:
    """A key-encryption key derived from the passphrase, with what it was derived with."""

    cost: ScryptCost
    salt: bytes
    key: bytes = field(repr=False)

    def params(self) -> str:
        """The ``kdf_params`` stored beside each key it wraps (JSON)."""
        return json.dumps(
            {"n": 2**self.cost.log2_n, "r": self.cost.r, "p": self.cost.p,
             "salt": _b64(self.salt), "length": WRAPPING_KEY_BYTES},
            sort_keys=True,
        )  # fmt: skip


def _check_passphrase(passphrase: str) -> None:
    if len(passphrase) < MIN_PASSPHRASE_CHARS:
        raise KeyMaterialError(
            f"the key passphrase must be at least {MIN_PASSPHRASE_CHARS} characters"
        )


_DERIVE: Final = (
    "import hashlib, json, sys; a = json.load(sys.stdin); sys.stdout.write(hashlib.scrypt("
    "a['passphrase'].encode(), salt=bytes.fromhex(a['salt']), n=a['n'], r=a['r'], p=a['p'],"
    " maxmem=2**31 - 1, dklen=a['length']).hex())"
)
"""The derivation as the child process runs it: the standard library's scrypt (OpenSSL's, as
``cryptography``'s), the passphrase on standard input (never in the arguments, which other
users can read), the key in hex on standard output."""
DERIVE_TIMEOUT_S: Final = 300.0


@functools.lru_cache(maxsize=16)
def _scrypt(passphrase: str, salt: bytes, cost: ScryptCost) -> bytes:
    """The derivation, once per process for each passphrase, salt and cost. It runs in a
    short-lived child interpreter: scrypt's 128 * r * N bytes (128 MiB by default) are then
    that process's, given back when it exits, instead of raising a long-lived server's peak
    memory for good (glibc keeps the freed arena) and doubling it in a container's limit."""
    request = json.dumps(
        {"passphrase": passphrase, "salt": salt.hex(), "n": 2**cost.log2_n, "r": cost.r,
         "p": cost.p, "length": WRAPPING_KEY_BYTES}
    )  # fmt: skip
    try:
        done = subprocess.run(  # noqa: S603 - this interpreter, our own code, no shell
            [sys.executable, "-I", "-S", "-c", _DERIVE], input=request.encode(),
            capture_output=True, timeout=DERIVE_TIMEOUT_S, check=False,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError) as error:
        raise KeyMaterialError(f"scrypt could not run: {error}") from None
    try:
        key = bytes.fromhex(done.stdout.decode())
    except (UnicodeDecodeError, ValueError):
        key = b""
    if done.returncode != 0 or len(key) != WRAPPING_KEY_BYTES:
        said = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
        raise KeyMaterialError(f"scrypt failed (exit {done.returncode}): {said[0]}")
    return key


def derive(passphrase: str, cost: ScryptCost, salt: bytes | None = None) -> WrappingKey:
    """The wrapping key for ``salt`` (a fresh random salt when None)."""
    _check_passphrase(passphrase)
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    return WrappingKey(cost, salt, _scrypt(passphrase, salt, cost))


def stored_wrapping(kdf_params: str) -> tuple[ScryptCost, bytes]:
    """The cost and salt recorded beside a wrapped key; damaged or absurd ones are refused."""
    try:
        params = json.loads(kdf_params)
        n, r, p, salt = params["n"], params["r"], params["p"], params["salt"]
        length = params.get("length", WRAPPING_KEY_BYTES)
    except (ValueError, TypeError, KeyError):
        raise KeyMaterialError("the stored key's scrypt parameters are damaged") from None
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (n, r, p, length)):
        raise KeyMaterialError("the stored key's scrypt parameters are damaged")
    if n < 2 or n & (n - 1) or length != WRAPPING_KEY_BYTES:
        raise KeyMaterialError("the stored key's scrypt parameters are damaged")
    return ScryptCost(n.bit_length() - 1, r, p), _unb64(salt)


def wrap(key: PrivateKey, wrapping: WrappingKey, associated: bytes) -> bytes:
    """The nonce and the AES-256-GCM ciphertext of the key's PKCS#8 encoding; ``associated``
    (the key's id and type) is authenticated, so that a row's key cannot be moved to another."""
    plain = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(wrapping.key).encrypt(nonce, plain, associated)


def unwrap(wrapped: bytes, wrapping: WrappingKey, associated: bytes) -> PrivateKey:
    try:
        plain = AESGCM(wrapping.key).decrypt(
            wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], associated
        )
    except (InvalidTag, ValueError):
        raise KeyMaterialError(
            "cannot decrypt the stored key: wrong passphrase or damaged key"
        ) from None
    try:
        key = serialization.load_der_private_key(plain, password=None)
    except (ValueError, TypeError):
        raise KeyMaterialError("the stored key is damaged") from None
    return _supported(key)


def decrypt_pkcs8(pem: bytes, passphrase: str) -> PrivateKey:
    """A key stored before scrypt (encrypted PKCS#8 PEM), for re-wrapping."""
    try:
        key = serialization.load_pem_private_key(pem, password=passphrase.encode())
    except (ValueError, TypeError):
        raise KeyMaterialError(
            "cannot decrypt the stored key: wrong passphrase or damaged key"
        ) from None
    return _supported(key)


def _supported(key: object) -> PrivateKey:
    if isinstance(key, Ed25519PrivateKey) or (
        isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1)
    ):
        return key
    raise KeyMaterialError("stored key is of an unsupported type")
