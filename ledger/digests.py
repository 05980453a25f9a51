"""The ledger's hash functions: SHA-256 by default, SM3 (GB/T 32905-2016) for 国密 deployments.

Both give 32-byte digests, so that every hash field, the Merkle tree and the contract's
``bytes32`` roots are the same whichever is chosen. SM3 comes from ``cryptography``. A ledger
uses one algorithm for everything (event hashes, chain links, Merkle nodes); which one is
recorded in each signed batch header, never guessed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from enum import StrEnum
from typing import Final

from cryptography.hazmat.primitives import hashes

DIGEST_BYTES: Final = 32

Hasher = Callable[[bytes], bytes]


class HashAlgorithm(StrEnum):
    SHA256 = "sha-256"
    SM3 = "sm3"


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _sm3(data: bytes) -> bytes:
    context = hashes.Hash(hashes.SM3())
    context.update(data)
    return context.finalize()


_HASHERS: Final[dict[HashAlgorithm, Hasher]] = {
    HashAlgorithm.SHA256: _sha256,
    HashAlgorithm.SM3: _sm3,
}


def hasher(algorithm: HashAlgorithm) -> Hasher:
    """The function computing ``algorithm``'s 32-byte digest of its argument."""
    return _HASHERS[algorithm]


def digest(algorithm: HashAlgorithm, data: bytes) -> bytes:
    return _HASHERS[algorithm](data)
