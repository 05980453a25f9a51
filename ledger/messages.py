"""The regulator's ledger service on the wire: a participant's pushed batch, the answer to it, a
page of flows, and the proof bundle of one event.

A proof bundle is self-contained: with it and any node of the chain, a third party checks the
event without the ledger service (:mod:`ledger.proofs`). Pydantic only: no web framework.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

from ledger.digests import HashAlgorithm
from ledger.events import Count, HexDigest

MAX_BATCH_EVENTS: Final = 100_000
MAX_SIGNED_HEADER_CHARS: Final = 16_384
MAX_PROOF_HASHES: Final = 64
"""An inclusion path has one hash per level: 64 levels hold more leaves than any batch."""

Address = Annotated[str, StringConstraints(pattern=r"^0x[0-9a-fA-F]{40}$")]
"""An EVM account or contract address."""
TransactionHash = Annotated[str, StringConstraints(pattern=r"^0x[0-9a-f]{64}$")]
SignedHeader = Annotated[str, StringConstraints(min_length=1, max_length=MAX_SIGNED_HEADER_CHARS)]


class _Model(BaseModel):
    model_config = ConfigDict(
        strict=True, frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True
    )


class BatchPush(_Model):
    """A participant's batch as it was signed and anchored: the signed header (compact JWS,
    :mod:`ledger.batches`), the events of its range in order, each as its canonical JSON object
    (RFC 8785 of exactly this object is what was hashed), and the chain account that anchored it
    (registered for the participant by the operator). ``transaction``, when known, must be the
    one that anchored the root."""

    signed_header: SignedHeader
    events: Annotated[list[dict[str, Any]], Field(min_length=1, max_length=MAX_BATCH_EVENTS)]
    account: Address
    transaction: TransactionHash | None = None


class BatchAccepted(_Model):
    participant: str
    batch_sequence: int
    first_sequence: int
    last_sequence: int
    root: str
    block_number: int
    transaction: str
    replayed: bool
    """True when this batch had been accepted before (the same batch pushed again)."""


class Flow(_Model):
    """One stored event, as its participant recorded it, with its place in the ledger."""

    participant: str
    sequence: int
    batch_sequence: int
    event: dict[str, Any]


class FlowPage(_Model):
    flows: list[Flow]
    offset: int
    limit: int
    next_offset: int | None
    """The offset of the next page; ``None`` on the last."""


class InclusionProof(_Model):
    """RFC 9162 (2.1.3): the leaf's index in the batch's tree, the tree's size and the path."""

    leaf_index: Count
    tree_size: Annotated[int, Field(ge=1, le=2**53 - 1)]
    path: Annotated[tuple[HexDigest, ...], Field(max_length=MAX_PROOF_HASHES)]


class AnchorReference(_Model):
    """Where the batch's root is on chain: the registry, the account that anchored it, the
    block and transaction, and the root."""

    chain_id: Annotated[int, Field(ge=0, le=2**63 - 1)]
    registry: Address
    account: Address
    block_number: Count
    transaction: TransactionHash
    root: HexDigest


class ProofBundle(_Model):
    """An event with everything needed to check it against the chain: its link in the
    participant's hash chain (sequence and previous link; the event hash is recomputed from the
    event), the signed batch header, the inclusion proof of the link's entry in the batch's
    tree, and the on-chain anchor."""

    version: Literal[1] = 1
    event: dict[str, Any]
    sequence: Count
    previous_hash: HexDigest
    hash_algorithm: HashAlgorithm
    batch_sequence: Count
    signed_header: SignedHeader
    inclusion: InclusionProof
    anchor: AnchorReference
