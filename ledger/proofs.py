"""Proof bundles: one event with its inclusion proof and on-chain anchor (:class:`ProofBundle`),
built from the regulator's archive, and checked by anyone with nothing but the bundle and a node
of the chain.

Checking a bundle (:func:`check_bundle`): the event's canonical form (RFC 8785) gives its hash;
with its sequence number and the previous link that gives the link entry, the leaf of the
batch's RFC 9162 tree (:mod:`ledger.hashchain`); the inclusion path leads from that leaf to the
root named by the signed batch header; and the registry contract holds that root for that batch
of the account that the operator registered for the event's participant. The header's signature
is not checked here (that needs the participant's DID document, which a bundle does not carry):
the chain is what makes the root binding.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final

from pydantic import ValidationError
from sqlmodel import Session, select

from identity import jwt_sign
from identity.errors import IdentityError
from ledger import store
from ledger.archive import ReceivedBatch
from ledger.batches import BatchHeader, tree_of
from ledger.canonical import canonicalise, read_canonical_event
from ledger.chain import AnchorRegistry, ChainError, ChainFault, OnChainAnchor
from ledger.digests import digest
from ledger.events import EventError
from ledger.hashchain import link_entry
from ledger.merkle import leaf_hash, verify_inclusion
from ledger.messages import AnchorReference, InclusionProof, ProofBundle
from ledger.store import BatchRecord, EventRecord

CHAIN_DOWN: Final = frozenset(
    {ChainFault.UNREACHABLE, ChainFault.TIMEOUT, ChainFault.GARBAGE, ChainFault.REFUSED}
)
"""Chain failures that say nothing about the bundle: the node could not be asked."""


class InvalidProofError(ValueError):
    """The bundle does not prove its event; the message says which step failed."""


@dataclass(frozen=True)
class MovedAnchor:
    """A batch whose anchor a reorganisation moved: the same root, mined again elsewhere."""

    participant: str
    batch_sequence: int
    from_block: int | None
    to_block: int
    transaction: str

    def describe(self) -> str:
        return (
            f"{self.participant} batch {self.batch_sequence}: anchored again in block "
            f"{self.to_block} by {self.transaction} (was block {self.from_block})"
        )


def follow_anchor(
    session: Session,
    batch: BatchRecord,
    anchor: OnChainAnchor,
    registry: AnchorRegistry,
    *,
    same_block_too: bool = True,
) -> MovedAnchor | None:
    """Store, in the caller's transaction, where the chain holds ``batch``'s anchor now, if
    not where the archive says (the root is checked by the caller): the bundles then name the
    block and transaction a node shows. ``None`` when it has not moved. With
    ``same_block_too``, an anchor in the same block is checked for its transaction (after a
    reorganisation a new transaction may land at the same height: one more log query); the
    participant's own recorder needs not, as it stores the transactions it sends itself."""
    if anchor.block_number == batch.anchor_block and not same_block_too:
        return None
    transaction = registry.anchor_transaction(anchor)
    if (anchor.block_number, transaction) == (batch.anchor_block, batch.anchor_transaction):
        return None
    moved = MovedAnchor(
        batch.participant, batch.batch_sequence, batch.anchor_block, anchor.block_number,
        transaction,
    )  # fmt: skip
    batch.anchor_block, batch.anchor_transaction = anchor.block_number, transaction
    session.add(batch)
    return moved


def build_bundle(session: Session, event_id: str) -> ProofBundle | None:
    """The bundle of ``event_id`` from the archive, ``None`` when it holds no such event."""
    event = session.exec(select(EventRecord).where(EventRecord.event_id == event_id)).first()
    if event is None or event.batch_sequence is None:
        return None
    batch = session.get(BatchRecord, (event.participant, event.batch_sequence))
    received = session.get(ReceivedBatch, (event.participant, event.batch_sequence))
    if batch is None or received is None or batch.anchor_transaction is None:
        return None
    header = store.header_of(batch)
    links = store.links(session, event.participant, header.first_sequence, header.last_sequence)
    tree = tree_of(links, header.hash_algorithm)
    index = event.sequence - header.first_sequence
    return ProofBundle(
        event=read_canonical_event(event.body).to_json(),
        sequence=event.sequence,
        previous_hash=event.previous_hash.hex(),
        hash_algorithm=header.hash_algorithm,
        batch_sequence=header.batch_sequence,
        signed_header=batch.signed_header,
        inclusion=InclusionProof(
            leaf_index=index,
            tree_size=tree.size,
            path=tuple(h.hex() for h in tree.inclusion_proof(index)),
        ),
        anchor=AnchorReference(
            chain_id=received.chain_id,
            registry=received.registry_address,
            account=received.account,
            block_number=batch.anchor_block or 0,
            transaction=batch.anchor_transaction,
            root=header.root,
        ),
    )


def _header(bundle: ProofBundle) -> BatchHeader:
    try:
        _protected, claims = jwt_sign.unverified(bundle.signed_header)
        return BatchHeader.model_validate_json(json.dumps(claims))
    except (IdentityError, ValidationError) as error:
        raise InvalidProofError(f"the signed header is unreadable: {error}") from None


def check_offline(bundle: ProofBundle) -> BatchHeader:
    """Every step that needs no chain: event, link, leaf, path, root. Returns the header."""
    try:
        body = canonicalise(bundle.event)
        event = read_canonical_event(body)
    except EventError as error:
        raise InvalidProofError(f"the event: {error}") from None
    header = _header(bundle)
    if header.participant != event.participant:
        raise InvalidProofError(
            f"the batch is {header.participant}'s, the event {event.participant}'s"
        )
    if header.hash_algorithm != bundle.hash_algorithm:
        raise InvalidProofError("the bundle's hash algorithm is not the batch header's")
    if header.batch_sequence != bundle.batch_sequence:
        raise InvalidProofError("the bundle's batch number is not the header's")
    if not header.first_sequence <= bundle.sequence <= header.last_sequence:
        raise InvalidProofError(
            f"event {bundle.sequence} is not in batch {header.batch_sequence} "
            f"({header.first_sequence}..{header.last_sequence})"
        )
    if (bundle.inclusion.leaf_index, bundle.inclusion.tree_size) != (
        bundle.sequence - header.first_sequence,
        header.size,
    ):
        raise InvalidProofError("the proof's leaf index or tree size is not the event's place")
    if bundle.anchor.root != header.root:
        raise InvalidProofError("the anchor's root is not the signed header's")
    algorithm = header.hash_algorithm
    entry = link_entry(
        bundle.sequence, bytes.fromhex(bundle.previous_hash), digest(algorithm, body)
    )
    if not verify_inclusion(
        leaf_hash(entry, algorithm),
        bundle.inclusion.leaf_index,
        bundle.inclusion.tree_size,
        [bytes.fromhex(h) for h in bundle.inclusion.path],
        header.root_bytes,
        algorithm,
    ):
        raise InvalidProofError("the inclusion proof does not lead from the event to the root")
    return header


def check_bundle(bundle: ProofBundle, registry: AnchorRegistry) -> None:
    """Raises :class:`InvalidProofError` unless the bundle proves its event against the chain
    ``registry`` is on; a :class:`ledger.chain.ChainError` when the node could not be asked."""
    header = check_offline(bundle)
    if registry.chain.chain_id != bundle.anchor.chain_id:
        raise InvalidProofError(
            f"the node is on chain {registry.chain.chain_id}, "
            f"the anchor on {bundle.anchor.chain_id}"
        )
    try:
        registered = registry.did_of(bundle.anchor.account)
        anchor = registry.verify_root(bundle.anchor.account, header)
        transaction = registry.anchor_transaction(anchor)
    except ChainError as error:
        if error.fault in CHAIN_DOWN:
            raise
        raise InvalidProofError(f"on chain: {error.message}") from None
    if registered != header.participant:
        raise InvalidProofError(
            f"account {bundle.anchor.account} is registered for {registered or 'nobody'}, "
            f"not {header.participant}"
        )
    if (anchor.block_number, transaction) != (
        bundle.anchor.block_number,
        bundle.anchor.transaction,
    ):
        raise InvalidProofError(
            f"the root was anchored in block {anchor.block_number} by {transaction}, not as the "
            "bundle says"
        )
