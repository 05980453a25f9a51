"""Canonical bytes of an event: the JSON Canonicalization Scheme (RFC 8785), through the
``rfc8785`` package, then the ledger's hash (:mod:`ledger.digests`).

The same event always gives the same bytes, whoever serialises it, so that the provider, the
consumer, the regulator and a third party compute the same hash. Nothing here chains events or
touches storage.
"""

from __future__ import annotations

from typing import Any

import rfc8785

from ledger.digests import HashAlgorithm, digest
from ledger.events import EventError, LedgerEvent, parse_event


def canonicalise(value: Any) -> bytes:
    """RFC 8785 bytes of a JSON value; values JCS cannot represent raise :class:`EventError`."""
    try:
        return rfc8785.dumps(value)
    except rfc8785.CanonicalizationError as error:
        raise EventError(f"no canonical form: {error}") from None


def event_bytes(event: LedgerEvent) -> bytes:
    return canonicalise(event.to_json())


def event_hash(event: LedgerEvent, algorithm: HashAlgorithm = HashAlgorithm.SHA256) -> bytes:
    return digest(algorithm, event_bytes(event))


def read_canonical_event(data: bytes) -> LedgerEvent:
    """An event from stored bytes that must be its canonical form: bytes that parse but are
    not canonical (reordered keys, added spaces, an escape spelt differently) are refused, since
    their hash would not be the one that was chained."""
    event = parse_event(data)
    if event_bytes(event) != data:
        raise EventError("the event's bytes are not its canonical form (RFC 8785)")
    return event
