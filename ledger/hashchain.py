"""Each participant's events form one hash chain: event ``n`` names the link of event ``n - 1``.

A link is the fixed binary entry ``0x01 || sequence (8 bytes, big-endian) || previous link hash ||
event hash`` and its hash; the first event's previous hash is 32 zero bytes. The entry is what
the Merkle tree of a batch hashes as a leaf (:mod:`ledger.merkle`), so that one inclusion proof
ties an event, its place in the chain and the anchored root together. The event hash covers the
participant (inside the event), so links of different participants never collide.

:func:`check_chain` re-checks stored records and names every one that fails and why: bytes
changed, a link that does not follow, a gap where events were deleted, sequence numbers out of
order. Pure functions: no storage, no clock.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, NamedTuple

from ledger.canonical import read_canonical_event
from ledger.digests import DIGEST_BYTES, HashAlgorithm, digest
from ledger.events import EventError

LINK_VERSION: Final = b"\x01"
GENESIS: Final = bytes(DIGEST_BYTES)
_SEQUENCE = struct.Struct(">Q")


class Link(NamedTuple):
    """One event's place in its participant's chain (a tuple: a ledger round makes and reads
    one per event, and a frozen dataclass cost five times as much to build)."""

    sequence: int
    previous_hash: bytes
    event_hash: bytes
    link_hash: bytes

    def entry(self) -> bytes:
        return link_entry(self.sequence, self.previous_hash, self.event_hash)


def link_entry(sequence: int, previous_hash: bytes, event_hash: bytes) -> bytes:
    if len(previous_hash) != DIGEST_BYTES or len(event_hash) != DIGEST_BYTES:
        raise ValueError("link hashes are 32 bytes")
    return LINK_VERSION + _SEQUENCE.pack(sequence) + previous_hash + event_hash


def append(
    previous: Link | None, event_hash: bytes, algorithm: HashAlgorithm = HashAlgorithm.SHA256
) -> Link:
    """The link after ``previous`` (``None``: the participant's first event)."""
    sequence = 0 if previous is None else previous.sequence + 1
    previous_hash = GENESIS if previous is None else previous.link_hash
    entry = link_entry(sequence, previous_hash, event_hash)
    return Link(sequence, previous_hash, event_hash, digest(algorithm, entry))


class Fault(StrEnum):
    UNREADABLE = "unreadable"
    """The stored bytes are not a canonical ledger event."""
    WRONG_PARTICIPANT = "wrong_participant"
    TAMPERED = "tampered"
    """The event's bytes, or its stored hashes, are not those that were chained."""
    BROKEN_LINK = "broken_link"
    """The previous hash is not the link of the event before."""
    GAP = "gap"
    """Events before this one are missing."""
    OUT_OF_ORDER = "out_of_order"
    """A sequence number that repeats or goes back."""


@dataclass(frozen=True)
class StoredRecord:
    """One event as stored: its canonical bytes and the chain fields kept beside them."""

    sequence: int
    event: bytes
    previous_hash: bytes
    event_hash: bytes
    link_hash: bytes


@dataclass(frozen=True)
class ChainFailure:
    sequence: int
    event_id: str | None
    fault: Fault
    detail: str


def check_chain(
    participant: str,
    records: Iterable[StoredRecord],
    algorithm: HashAlgorithm = HashAlgorithm.SHA256,
    *,
    start: Link | None = None,
) -> list[ChainFailure]:
    """Every failure of ``records`` (in stored order) as ``participant``'s chain, continuing from
    ``start`` (``None``: from the first event)."""
    failures: list[ChainFailure] = []
    expected_sequence = 0 if start is None else start.sequence + 1
    expected_previous = GENESIS if start is None else start.link_hash
    for record in records:
        event_id: str | None = None
        found: list[tuple[Fault, str]] = []
        try:
            event = read_canonical_event(record.event)
            event_id = event.event_id
            if event.participant != participant:
                found.append((Fault.WRONG_PARTICIPANT, f"recorded by {event.participant}"))
        except EventError as error:
            found.append((Fault.UNREADABLE, str(error)))
        if record.sequence < expected_sequence:
            found.append(
                (Fault.OUT_OF_ORDER, f"sequence {record.sequence} after {expected_sequence - 1}")
            )
        elif record.sequence > expected_sequence:
            found.append(
                (Fault.GAP, f"events {expected_sequence}..{record.sequence - 1} are missing")
            )
        if digest(algorithm, record.event) != record.event_hash:
            found.append((Fault.TAMPERED, "the event's bytes do not give its stored hash"))
        elif record.link_hash != digest(
            algorithm, link_entry(record.sequence, record.previous_hash, record.event_hash)
        ):
            found.append(
                (Fault.TAMPERED, "the stored link hash is not that of this event and its place")
            )
        if record.previous_hash != expected_previous:
            found.append(
                (Fault.BROKEN_LINK, "the previous hash is not the link of the event before")
            )
        failures += [ChainFailure(record.sequence, event_id, f, d) for f, d in found]
        expected_sequence = max(expected_sequence, record.sequence + 1)
        expected_previous = record.link_hash
    return failures
