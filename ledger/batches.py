"""Batches: the Merkle root over a run of a participant's chained events, in a header that the
participant signs with its DID key and anchors on the chain.

A header names the participant, the batch's number, the event range (inclusive), the root of the
RFC 9162 tree whose leaves are the events' link entries (:mod:`ledger.hashchain`), the previous
batch's root (32 zero bytes for batch 0: a participant's batches chain as its events do), the
hash algorithm and when the batch was closed. It is signed as a compact JWS (EdDSA or ES256, the
participant's key as today, ``typ`` ``kexin-ledger-batch+jwt``) whose claims are the header; the
key must be listed under ``assertionMethod`` in the participant's DID document. Nothing here
stores or sends anything.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from pydantic.alias_generators import to_camel

from identity import jwt_sign
from identity.did import DID
from identity.documents import DIDDocument
from identity.errors import IdentityError
from identity.keys import PrivateKey
from ledger.digests import HashAlgorithm
from ledger.events import Count, HexDigest, UtcTime
from ledger.hashchain import GENESIS, Link
from ledger.machine import BatchReady
from ledger.merkle import MerkleTree

BATCH_TYP: Final = "kexin-ledger-batch+jwt"
SIGNING_RELATIONSHIP: Final = "assertionMethod"
ZERO_ROOT: Final = GENESIS.hex()


class BatchFault(StrEnum):
    MALFORMED = "malformed_batch"
    BAD_SIGNATURE = "bad_signature"
    WRONG_PARTICIPANT = "wrong_participant"
    WRONG_RANGE = "wrong_range"
    ROOT_MISMATCH = "root_mismatch"
    BROKEN_CHAIN = "broken_chain"


class BatchError(ValueError):
    def __init__(self, fault: BatchFault, message: str) -> None:
        super().__init__(f"{fault.value}: {message}")
        self.fault = fault
        self.message = message


class BatchHeader(BaseModel):
    model_config = ConfigDict(
        strict=True, frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True
    )

    version: Literal[1] = 1
    participant: DID
    batch_sequence: Count
    first_sequence: Count
    last_sequence: Count
    root: HexDigest
    previous_root: HexDigest
    hash_algorithm: HashAlgorithm
    closed_at: UtcTime

    @model_validator(mode="after")
    def _consistent(self) -> BatchHeader:
        if self.last_sequence < self.first_sequence:
            raise ValueError("a batch holds at least one event")
        if self.batch_sequence == 0 and self.previous_root != ZERO_ROOT:
            raise ValueError("the first batch has no previous root")
        if self.batch_sequence > 0 and self.previous_root == ZERO_ROOT:
            raise ValueError("a later batch names its previous root")
        return self

    @property
    def size(self) -> int:
        return self.last_sequence - self.first_sequence + 1

    @property
    def root_bytes(self) -> bytes:
        return bytes.fromhex(self.root)

    @property
    def previous_root_bytes(self) -> bytes:
        return bytes.fromhex(self.previous_root)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


def _check_range(first: int, last: int, links: Sequence[Link]) -> None:
    if len(links) != last - first + 1 or any(
        link.sequence != first + i for i, link in enumerate(links)
    ):
        raise BatchError(BatchFault.WRONG_RANGE, f"the links are not events {first}..{last}")


def tree_of(links: Sequence[Link], algorithm: HashAlgorithm) -> MerkleTree:
    return MerkleTree.of_entries([link.entry() for link in links], algorithm)


def build_header(
    participant: str,
    ready: BatchReady,
    links: Sequence[Link],
    previous_root: bytes,
    closed_at: datetime,
    algorithm: HashAlgorithm = HashAlgorithm.SHA256,
) -> tuple[BatchHeader, MerkleTree]:
    """The header of a batch the batcher closed, and its tree (kept for inclusion proofs)."""
    _check_range(ready.first_sequence, ready.last_sequence, links)
    tree = tree_of(links, algorithm)
    try:
        header = BatchHeader(
            participant=participant,
            batch_sequence=ready.batch_sequence,
            first_sequence=ready.first_sequence,
            last_sequence=ready.last_sequence,
            root=tree.root.hex(),
            previous_root=previous_root.hex(),
            hash_algorithm=algorithm,
            closed_at=closed_at,
        )
    except ValidationError as error:
        raise BatchError(BatchFault.MALFORMED, str(error.errors()[0]["msg"])) from None
    return header, tree


def sign_header(header: BatchHeader, key_id: str, key: PrivateKey) -> str:
    """Sign with the participant's key ``key_id`` (absolute: ``did#key-1``), as the key ring's
    current ``SigningKey`` gives it."""
    if key_id.split("#", 1)[0] != header.participant:
        raise BatchError(BatchFault.WRONG_PARTICIPANT, f"{key_id} is not {header.participant}")
    return jwt_sign.sign(header.to_json(), key, key_id, BATCH_TYP)


def verify_signed_header(token: str, document: DIDDocument) -> BatchHeader:
    """The header of a signed batch whose signature is by a key of ``document`` listed under
    ``assertionMethod``, and whose participant is that document's DID."""
    try:
        protected, claims = jwt_sign.unverified(token)
        jwt_sign.check_typ(protected, frozenset({BATCH_TYP}), "a ledger batch")
        header = BatchHeader.model_validate_json(json.dumps(claims))
    except IdentityError as error:
        raise BatchError(BatchFault.MALFORMED, error.message) from None
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "header"
        raise BatchError(BatchFault.MALFORMED, f"{where}: {first['msg']}") from None
    if header.participant != document.id:
        raise BatchError(BatchFault.WRONG_PARTICIPANT, f"{header.participant} is not {document.id}")
    try:
        key_id = jwt_sign.key_id_of(protected, header.participant)
        if key_id is None:
            raise BatchError(BatchFault.BAD_SIGNATURE, "the signature names no key (kid)")
        jwt_sign.verify(token, document, key_id, SIGNING_RELATIONSHIP)
    except IdentityError as error:
        raise BatchError(BatchFault.BAD_SIGNATURE, error.message) from None
    return header


def check_batch(
    header: BatchHeader, links: Sequence[Link], previous: BatchHeader | None
) -> MerkleTree:
    """That ``links`` are the header's events (range and root) and that the header follows
    ``previous`` (the participant's batch before, ``None`` for its first). Returns the tree."""
    _check_range(header.first_sequence, header.last_sequence, links)
    expected_first = 0 if previous is None else previous.last_sequence + 1
    expected_batch = 0 if previous is None else previous.batch_sequence + 1
    expected_root = ZERO_ROOT if previous is None else previous.root
    if (header.batch_sequence, header.first_sequence) != (expected_batch, expected_first):
        raise BatchError(
            BatchFault.BROKEN_CHAIN,
            f"batch {header.batch_sequence} from event {header.first_sequence} does not follow "
            f"(expected batch {expected_batch} from event {expected_first})",
        )
    if header.previous_root != expected_root:
        raise BatchError(BatchFault.BROKEN_CHAIN, "the previous root is not the batch before's")
    tree = tree_of(links, header.hash_algorithm)
    if tree.root.hex() != header.root:
        raise BatchError(BatchFault.ROOT_MISMATCH, "the events do not give the header's root")
    return tree
