"""Merkle trees of RFC 9162 (Certificate Transparency 2.0), section 2.1: tree hash, inclusion
proofs and consistency proofs, their generation and their verification.

The hash function is the ledger's (SHA-256 by default, SM3 selectable): RFC 9162 fixes the tree's
shape and the domain separation of leaves (``0x00``) and interior nodes (``0x01``), and lets a log
choose its hash algorithm. Verification follows the RFC's algorithms step by step (2.1.3.2 and
2.1.4.2), so that a third party with the RFC in hand can re-implement it. A tree is computed level
by level, a lone last node moving up unchanged; that gives the RFC's tree, whose split point is
the largest power of two smaller than the size. This module does no I/O and knows nothing of
events: it hashes the bytes it is given.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from ledger.digests import DIGEST_BYTES, HashAlgorithm, Hasher, hasher

LEAF_PREFIX: Final = b"\x00"
NODE_PREFIX: Final = b"\x01"


class ProofRequestError(ValueError):
    """A proof asked of a tree for an index or size it does not have."""


def leaf_hash(data: bytes, algorithm: HashAlgorithm = HashAlgorithm.SHA256) -> bytes:
    """``MTH({d(0)}) = HASH(0x00 || d(0))``."""
    return hasher(algorithm)(LEAF_PREFIX + data)


def node_hash(left: bytes, right: bytes, algorithm: HashAlgorithm = HashAlgorithm.SHA256) -> bytes:
    """``HASH(0x01 || left || right)``."""
    return hasher(algorithm)(NODE_PREFIX + left + right)


def empty_root(algorithm: HashAlgorithm = HashAlgorithm.SHA256) -> bytes:
    """``MTH({}) = HASH()``: the hash of the empty string."""
    return hasher(algorithm)(b"")


class MerkleTree:
    """The tree over a list of entries, each hashed as a leaf."""

    def __init__(
        self, leaf_hashes: Sequence[bytes], algorithm: HashAlgorithm = HashAlgorithm.SHA256
    ) -> None:
        self.algorithm = algorithm
        self._hash: Hasher = hasher(algorithm)
        self._levels: list[list[bytes]] = [list(leaf_hashes)]
        level = self._levels[0]
        while len(level) > 1:
            parent = [
                self._hash(NODE_PREFIX + level[i] + level[i + 1])
                for i in range(0, len(level) - 1, 2)
            ]
            if len(level) % 2:
                parent.append(level[-1])
            self._levels.append(parent)
            level = parent

    @classmethod
    def of_entries(
        cls, entries: Sequence[bytes], algorithm: HashAlgorithm = HashAlgorithm.SHA256
    ) -> MerkleTree:
        hash_ = hasher(algorithm)
        return cls([hash_(LEAF_PREFIX + entry) for entry in entries], algorithm)

    @property
    def size(self) -> int:
        return len(self._levels[0])

    @property
    def root(self) -> bytes:
        if not self._levels[0]:
            return self._hash(b"")
        return self._levels[-1][0]

    def leaf(self, index: int) -> bytes:
        return self._levels[0][index]

    def _subtree(self, start: int, end: int) -> bytes:
        """``MTH(D[start:end])`` for a range that is one node of this tree: a complete subtree
        ``[i * 2^k, (i+1) * 2^k)``, or the last one of its level, cut at the tree's size."""
        level = (end - start - 1).bit_length()
        return self._levels[level][start >> level]

    def inclusion_proof(self, index: int) -> list[bytes]:
        """``PATH(m, D[n])`` (2.1.3.1): the siblings from the leaf up to the root."""
        if not 0 <= index < self.size:
            raise ProofRequestError(f"no leaf {index} in a tree of {self.size}")
        path = []
        for level in self._levels[:-1]:
            sibling = index ^ 1
            if sibling < len(level):
                path.append(level[sibling])
            index >>= 1
        return path

    def consistency_proof(self, first_size: int) -> list[bytes]:
        """``PROOF(m, D[n])`` (2.1.4.1): that the tree of the first ``first_size`` entries is
        a prefix of this one. Empty when ``first_size`` is 0 or this tree's size."""
        if not 0 <= first_size <= self.size:
            raise ProofRequestError(f"no prefix of {first_size} in a tree of {self.size}")
        if first_size in (0, self.size):
            return []
        return self._subproof(first_size, 0, self.size, complete=True)

    def _subproof(self, m: int, start: int, end: int, *, complete: bool) -> list[bytes]:
        n = end - start
        if m == n:
            # SUBPROOF(m, D[m], true) = {}; SUBPROOF(m, D[m], false) = {MTH(D[m])}
            return [] if complete else [self._subtree(start, end)]
        k = 1 << ((n - 1).bit_length() - 1)
        if m <= k:
            return [
                *self._subproof(m, start, start + k, complete=complete),
                self._subtree(start + k, end),
            ]
        return [
            *self._subproof(m - k, start + k, end, complete=False),
            self._subtree(start, start + k),
        ]


def _lsb(value: int) -> bool:
    return bool(value & 1)


def _hashes_ok(values: Sequence[bytes]) -> bool:
    return all(isinstance(v, bytes) and len(v) == DIGEST_BYTES for v in values)


def verify_inclusion(
    leaf: bytes,
    index: int,
    tree_size: int,
    proof: Sequence[bytes],
    root: bytes,
    algorithm: HashAlgorithm = HashAlgorithm.SHA256,
) -> bool:
    """RFC 9162, 2.1.3.2: does ``leaf`` (a leaf hash) sit at ``index`` of the tree of
    ``tree_size`` whose root is ``root``?"""
    if not _hashes_ok([leaf, root, *proof]) or index < 0:
        return False
    hash_ = hasher(algorithm)
    # 1. Compare leaf_index from the inclusion_proof_v2 structure against tree_size. If
    #    leaf_index is greater than or equal to tree_size, then fail the proof verification.
    if index >= tree_size:
        return False
    # 2. Set fn to leaf_index and sn to tree_size - 1.
    fn, sn = index, tree_size - 1
    # 3. Set r to hash.
    r = leaf
    # 4. For each value p in the inclusion_path array:
    for p in proof:
        # a. If sn is 0, then stop the iteration and fail the proof verification.
        if sn == 0:
            return False
        # b. If LSB(fn) is set, or if fn is equal to sn, then:
        if _lsb(fn) or fn == sn:
            # i. Set r to HASH(0x01 || p || r).
            r = hash_(NODE_PREFIX + p + r)
            # ii. If LSB(fn) is not set, then right-shift both fn and sn equally until either
            #     LSB(fn) is set or fn is 0.
            if not _lsb(fn):
                while not _lsb(fn) and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            # Otherwise: Set r to HASH(0x01 || r || p).
            r = hash_(NODE_PREFIX + r + p)
        # c. Finally, right-shift both fn and sn one time.
        fn >>= 1
        sn >>= 1
    # 5. Compare sn to 0. Compare r against the root_hash. If sn is equal to 0 and r and the
    #    root_hash are equal, then the log has proven the inclusion of hash.
    return sn == 0 and r == root


def verify_consistency(
    first_size: int,
    second_size: int,
    first_root: bytes,
    second_root: bytes,
    proof: Sequence[bytes],
    algorithm: HashAlgorithm = HashAlgorithm.SHA256,
) -> bool:
    """RFC 9162, 2.1.4.2: is the tree of ``first_size`` with ``first_root`` a prefix of the tree
    of ``second_size`` with ``second_root``?

    The RFC's algorithm covers ``0 < first_size < second_size``. For the ends, its definition of
    ``PROOF`` (2.1.4.1) gives an empty proof: equal sizes prove consistency when the roots are
    equal, and every tree extends the empty one.
    """
    if not _hashes_ok([first_root, second_root, *proof]):
        return False
    if not 0 <= first_size <= second_size:
        return False
    if first_size == second_size:
        return not proof and first_root == second_root
    if first_size == 0:
        return not proof
    hash_ = hasher(algorithm)
    path = list(proof)
    # 1. If consistency_path is an empty array, stop and fail the proof verification.
    if not path:
        return False
    # 2. If first is an exact power of 2, then prepend first_hash to the consistency_path array.
    if first_size & (first_size - 1) == 0:
        path.insert(0, first_root)
    # 3. Set fn to first - 1 and sn to second - 1.
    fn, sn = first_size - 1, second_size - 1
    # 4. If LSB(fn) is set, then right-shift both fn and sn equally until LSB(fn) is not set.
    while _lsb(fn):
        fn >>= 1
        sn >>= 1
    # 5. Set both fr and sr to the first value in the consistency_path array.
    fr = sr = path[0]
    # 6. For each subsequent value c in the consistency_path array:
    for c in path[1:]:
        # a. If sn is 0, then stop the iteration and fail the proof verification.
        if sn == 0:
            return False
        # b. If LSB(fn) is set, or if fn is equal to sn, then:
        if _lsb(fn) or fn == sn:
            # i. Set fr to HASH(0x01 || c || fr). Set sr to HASH(0x01 || c || sr).
            fr = hash_(NODE_PREFIX + c + fr)
            sr = hash_(NODE_PREFIX + c + sr)
            # ii. If LSB(fn) is not set, then right-shift both fn and sn equally until either
            #     LSB(fn) is set or fn is 0.
            if not _lsb(fn):
                while not _lsb(fn) and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            # Otherwise: Set sr to HASH(0x01 || sr || c).
            sr = hash_(NODE_PREFIX + sr + c)
        # c. Finally, right-shift both fn and sn one time.
        fn >>= 1
        sn >>= 1
    # 7. Verify that the fr calculated is equal to the first_hash supplied, that the sr
    #    calculated is equal to the second_hash supplied, and that sn is 0.
    return fr == first_root and sr == second_root and sn == 0
