"""Canonical bytes of an event: the JSON Canonicalization Scheme (RFC 8785), through the
``rfc8785`` package, then the ledger's hash (:mod:`ledger.digests`).

For the values whose JCS form is exactly what the standard library's C encoder writes with
sorted keys and no spaces (strings, integers within JCS's safe range, booleans, null, lists, and
objects whose keys are ASCII, so that code-point and UTF-16 order agree), that encoder writes
them: ``rfc8785`` serialises each string in Python, and it was most of a connector's ledger
round. Anything else (a float, a large integer, a non-ASCII key, a subclass) goes through
``rfc8785``; a test compares the two on generated values.

The same event always gives the same bytes, whoever serialises it, so that the provider, the
consumer, the regulator and a third party compute the same hash. Nothing here chains events or
touches storage.
"""

from __future__ import annotations

import json
from typing import Any, Final

import rfc8785

from ledger.digests import HashAlgorithm, digest
from ledger.events import EventError, LedgerEvent, parse_event

_SAFE_INTEGER: Final = 2**53 - 1
"""JCS's integers: those an IEEE 754 double holds exactly (RFC 8785 3.2.2.3, I-JSON)."""
_MOST_NODES: Final = 1_000_000
_ENCODER: Final = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _plain(value: Any) -> bool:
    """Whether ``value`` holds only what the C encoder writes as JCS does (see above)."""
    pending = [value]
    seen = 0
    while pending:
        item = pending.pop()
        seen += 1
        kind = type(item)
        if kind is str or kind is bool or item is None:
            continue
        if kind is int:
            if -_SAFE_INTEGER <= item <= _SAFE_INTEGER:
                continue
            return False
        if kind is dict:
            if not all(type(key) is str and key.isascii() for key in item):
                return False
            pending.extend(item.values())
        elif kind is list:
            pending.extend(item)
        else:
            return False
        if seen > _MOST_NODES:  # rfc8785 decides (a value that contains itself: RecursionError)
            return False
    return True


def canonicalise(value: Any) -> bytes:
    """RFC 8785 bytes of a JSON value; values JCS cannot represent raise :class:`EventError`."""
    if _plain(value):
        try:
            return _ENCODER.encode(value).encode()
        except UnicodeEncodeError:
            pass  # a lone surrogate: rfc8785 refuses it, with its reason
        except RecursionError:
            raise EventError("no canonical form: nested too deeply") from None
    try:
        return rfc8785.dumps(value)
    except rfc8785.CanonicalizationError as error:
        raise EventError(f"no canonical form: {error}") from None
    except RecursionError:
        raise EventError("no canonical form: nested too deeply, or contains itself") from None


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
