"""The regulator's checks of a pushed batch that need no I/O: each event is a canonical ledger
event of the batch's participant, the events continue that participant's hash chain from the
last accepted batch, and they give the header's Merkle root.

What needs I/O is done by the service around these functions: the signature against the DID
document (:func:`ledger.batches.verify_signed_header`), the root against the chain
(:mod:`ledger.chain`), storage (:mod:`ledger.archive`). No clock, no database here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ledger.batches import BatchError, BatchFault, BatchHeader, check_batch
from ledger.canonical import canonicalise, read_canonical_event
from ledger.digests import digest
from ledger.events import EventError, LedgerEvent
from ledger.hashchain import Link, append
from ledger.merkle import MerkleTree


class IngestFault(StrEnum):
    MALFORMED_EVENT = "malformed_event"
    """Not a ledger event, or not in its canonical form."""
    FOREIGN_EVENT = "foreign_event"
    """An event recorded by another participant than the batch's."""
    DUPLICATE_EVENT = "duplicate_event"
    """The same event id twice in one batch."""


class IngestError(ValueError):
    def __init__(self, fault: IngestFault, message: str) -> None:
        super().__init__(f"{fault.value}: {message}")
        self.fault = fault
        self.message = message


@dataclass(frozen=True)
class ReadEvent:
    """A pushed event: the event, its canonical bytes (RFC 8785) and their hash."""

    event: LedgerEvent
    body: bytes
    event_hash: bytes


@dataclass(frozen=True)
class CheckedBatch:
    header: BatchHeader
    events: list[ReadEvent]
    links: list[Link]
    tree: MerkleTree


def read_events(header: BatchHeader, pushed: Sequence[dict[str, Any]]) -> list[ReadEvent]:
    """Each pushed object's canonical bytes (RFC 8785) and hash, under the header's algorithm;
    refused unless each is a valid event of the header's participant whose canonical form
    reads back to the same bytes."""
    events: list[ReadEvent] = []
    seen: set[str] = set()
    for index, value in enumerate(pushed):
        try:
            body = canonicalise(value)
            event = read_canonical_event(body)
        except EventError as error:
            raise IngestError(IngestFault.MALFORMED_EVENT, f"events[{index}]: {error}") from None
        if event.participant != header.participant:
            raise IngestError(
                IngestFault.FOREIGN_EVENT,
                f"events[{index}] was recorded by {event.participant}, not {header.participant}",
            )
        if event.event_id in seen:
            raise IngestError(
                IngestFault.DUPLICATE_EVENT, f"events[{index}]: {event.event_id} appears twice"
            )
        seen.add(event.event_id)
        events.append(ReadEvent(event, body, digest(header.hash_algorithm, body)))
    return events


def check_pushed(
    header: BatchHeader,
    pushed: Sequence[dict[str, Any]],
    head: Link | None,
    previous: BatchHeader | None,
) -> CheckedBatch:
    """That ``pushed`` are the events of ``header`` chained after ``head`` (the participant's
    last accepted event, ``None`` before its first) and that ``header`` follows ``previous``
    (its last accepted batch): sequence, previous root, event range and Merkle root. Raises
    :class:`IngestError` or :class:`ledger.batches.BatchError`."""
    if previous is not None and previous.hash_algorithm != header.hash_algorithm:
        raise BatchError(
            BatchFault.BROKEN_CHAIN,
            f"the participant's ledger hashes with {previous.hash_algorithm.value}",
        )
    events = read_events(header, pushed)
    expected_head = None if previous is None else previous.last_sequence
    if (None if head is None else head.sequence) != expected_head:
        raise BatchError(
            BatchFault.BROKEN_CHAIN, "the stored events do not end with the last batch"
        )
    links: list[Link] = []
    last = head
    for item in events:
        last = append(last, item.event_hash, header.hash_algorithm)
        links.append(last)
    # Links are numbered from the head: a header whose range starts elsewhere fails here.
    tree = check_batch(header, links, previous)
    return CheckedBatch(header, events, links, tree)
