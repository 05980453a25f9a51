"""RFC 9162 Merkle trees: the Certificate Transparency reference vectors (the C++ and Go test
suites' tree of eight leaves), then every size up to 300 against the RFC's recursive
definitions, then tampering."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.digests import HashAlgorithm
from ledger.merkle import (
    MerkleTree,
    ProofRequestError,
    empty_root,
    leaf_hash,
    node_hash,
    verify_consistency,
    verify_inclusion,
)

# certificate-transparency cpp/merkletree/merkletree_test.cc and Trillian's in-memory tree tests
LEAF_INPUTS = [bytes.fromhex(h) for h in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
)]  # fmt: skip
ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
# (leaf index, tree size, path); the Go vectors count leaves from 1, these from 0
PATHS = [
    (0, 1, []),
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]  # fmt: skip
CONSISTENCY = [
    (1, 1, []),
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]  # fmt: skip


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def reference_root(entries: list[bytes]) -> bytes:
    """MTH, written as RFC 9162 2.1.1 defines it."""
    if not entries:
        return hashlib.sha256(b"").digest()
    if len(entries) == 1:
        return hashlib.sha256(b"\x00" + entries[0]).digest()
    k = _split(len(entries))
    return hashlib.sha256(
        b"\x01" + reference_root(entries[:k]) + reference_root(entries[k:])
    ).digest()


def reference_path(m: int, entries: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]), 2.1.3.1."""
    if len(entries) == 1:
        return []
    k = _split(len(entries))
    if m < k:
        return [*reference_path(m, entries[:k]), reference_root(entries[k:])]
    return [*reference_path(m - k, entries[k:]), reference_root(entries[:k])]


def reference_subproof(m: int, entries: list[bytes], complete: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b), 2.1.4.1."""
    n = len(entries)
    if m == n:
        return [] if complete else [reference_root(entries)]
    k = _split(n)
    if m <= k:
        return [*reference_subproof(m, entries[:k], complete), reference_root(entries[k:])]
    return [*reference_subproof(m - k, entries[k:], False), reference_root(entries[:k])]


def entries(n: int) -> list[bytes]:
    return [i.to_bytes(2, "big") for i in range(n)]


def flip(value: bytes, bit: int = 0) -> bytes:
    return bytes([value[0] ^ (1 << bit), *value[1:]])


@pytest.mark.parametrize("size", range(9))
def test_the_reference_roots(size: int) -> None:
    assert MerkleTree.of_entries(LEAF_INPUTS[:size]).root.hex() == ROOTS[size]


@pytest.mark.parametrize(("index", "size", "path"), PATHS)
def test_the_reference_inclusion_proofs(index: int, size: int, path: list[str]) -> None:
    tree = MerkleTree.of_entries(LEAF_INPUTS[:size])
    proof = tree.inclusion_proof(index)
    assert [p.hex() for p in proof] == path
    assert verify_inclusion(leaf_hash(LEAF_INPUTS[index]), index, size, proof, tree.root)


@pytest.mark.parametrize(("first", "second", "proof"), CONSISTENCY)
def test_the_reference_consistency_proofs(first: int, second: int, proof: list[str]) -> None:
    tree = MerkleTree.of_entries(LEAF_INPUTS[:second])
    made = tree.consistency_proof(first)
    assert [p.hex() for p in made] == proof
    first_root = bytes.fromhex(ROOTS[first])
    assert verify_consistency(first, second, first_root, tree.root, made)


def test_leaves_and_nodes_are_domain_separated() -> None:
    a, b = b"a", b"b"
    assert leaf_hash(a) == hashlib.sha256(b"\x00a").digest()
    assert (
        node_hash(leaf_hash(a), leaf_hash(b))
        == hashlib.sha256(b"\x01" + leaf_hash(a) + leaf_hash(b)).digest()
    )
    # A two-leaf tree's root is not a leaf whose data is the two leaf hashes (second preimage).
    forged = leaf_hash(a) + leaf_hash(b)
    assert MerkleTree.of_entries([a, b]).root != MerkleTree.of_entries([forged]).root


def test_every_size_up_to_300_has_the_rfc_root() -> None:
    data = entries(300)
    for size in range(301):
        assert MerkleTree.of_entries(data[:size]).root == reference_root(data[:size]), size


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_inclusion_proofs_are_the_rfc_path_and_verify(data: st.DataObject) -> None:
    size = data.draw(st.integers(1, 300))
    index = data.draw(st.integers(0, size - 1))
    tree = MerkleTree.of_entries(entries(size))
    proof = tree.inclusion_proof(index)
    assert proof == reference_path(index, entries(size))
    leaf = tree.leaf(index)
    assert verify_inclusion(leaf, index, size, proof, tree.root)
    assert not verify_inclusion(flip(leaf), index, size, proof, tree.root)
    assert not verify_inclusion(leaf, index, size, proof, flip(tree.root))
    if size > 1:
        other = data.draw(st.integers(0, size - 1).filter(lambda i: i != index))
        assert not verify_inclusion(leaf, other, size, proof, tree.root)
        position = data.draw(st.integers(0, len(proof) - 1))
        tampered = [*proof]
        tampered[position] = flip(tampered[position], data.draw(st.integers(0, 7)))
        assert not verify_inclusion(leaf, index, size, tampered, tree.root)
        assert not verify_inclusion(leaf, index, size, proof[:-1], tree.root)
        assert not verify_inclusion(leaf, index, size, [*proof, proof[0]], tree.root)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_consistency_proofs_are_the_rfc_proof_and_verify(data: st.DataObject) -> None:
    second = data.draw(st.integers(1, 300))
    first = data.draw(st.integers(1, second))
    full = MerkleTree.of_entries(entries(second))
    prefix = MerkleTree.of_entries(entries(first))
    proof = full.consistency_proof(first)
    assert proof == (reference_subproof(first, entries(second), True) if first < second else [])
    assert verify_consistency(first, second, prefix.root, full.root, proof)
    assert not verify_consistency(first, second, flip(prefix.root), full.root, proof)
    assert not verify_consistency(first, second, prefix.root, flip(full.root), proof)
    if proof:
        position = data.draw(st.integers(0, len(proof) - 1))
        tampered = [*proof]
        tampered[position] = flip(tampered[position])
        assert not verify_consistency(first, second, prefix.root, full.root, tampered)
    # A tree whose history was rewritten is not consistent with the one seen before.
    rewritten = MerkleTree.of_entries([b"rewritten", *entries(second)[1:]])
    assert not verify_consistency(
        first, second, prefix.root, rewritten.root, rewritten.consistency_proof(first)
    )


def test_the_empty_tree() -> None:
    tree = MerkleTree([])
    assert tree.root == empty_root() == bytes.fromhex(ROOTS[0])
    assert tree.consistency_proof(0) == []
    assert verify_consistency(0, 5, tree.root, MerkleTree.of_entries(entries(5)).root, [])
    with pytest.raises(ProofRequestError):
        tree.inclusion_proof(0)


@pytest.mark.parametrize(
    ("index", "size"),
    [pytest.param(-1, 4, id="negative"), pytest.param(4, 4, id="past-the-end")],
)
def test_proofs_of_leaves_that_do_not_exist_are_refused(index: int, size: int) -> None:
    tree = MerkleTree.of_entries(entries(size))
    with pytest.raises(ProofRequestError):
        tree.inclusion_proof(index)
    with pytest.raises(ProofRequestError):
        tree.consistency_proof(size + 1)
    assert not verify_inclusion(tree.leaf(0), index, size, [], tree.root)


def test_malformed_proof_elements_fail_rather_than_raise() -> None:
    tree = MerkleTree.of_entries(entries(4))
    proof = tree.inclusion_proof(1)
    assert not verify_inclusion(tree.leaf(1), 1, 4, [proof[0][:31], proof[1]], tree.root)
    assert not verify_consistency(2, 4, b"short", tree.root, tree.consistency_proof(2))
    assert not verify_consistency(3, 2, tree.root, tree.root, [])


def test_sm3_trees_verify_with_sm3_only() -> None:
    data = entries(13)
    sha = MerkleTree.of_entries(data)
    sm3 = MerkleTree.of_entries(data, HashAlgorithm.SM3)
    assert sm3.root != sha.root
    leaf = leaf_hash(data[6], HashAlgorithm.SM3)
    assert leaf == sm3.leaf(6)
    proof = sm3.inclusion_proof(6)
    assert verify_inclusion(leaf, 6, 13, proof, sm3.root, HashAlgorithm.SM3)
    assert not verify_inclusion(leaf, 6, 13, proof, sm3.root)
    first = MerkleTree.of_entries(data[:5], HashAlgorithm.SM3)
    assert verify_consistency(
        5, 13, first.root, sm3.root, sm3.consistency_proof(5), HashAlgorithm.SM3
    )
