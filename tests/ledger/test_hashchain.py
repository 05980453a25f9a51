"""A participant's hash chain: a clean chain checks; one changed byte, a deleted event, two
events swapped, a foreign event are each named, with the event and the reason."""

from __future__ import annotations

import dataclasses

import pytest

from ledger.canonical import event_bytes
from ledger.digests import HashAlgorithm, digest
from ledger.events import parse_event
from ledger.hashchain import GENESIS, ChainFailure, Fault, append, check_chain, link_entry
from tests.ledger.factories import CONSUMER, PROVIDER, access_event, chained, stored


def faults(failures: list[ChainFailure]) -> list[tuple[int, Fault]]:
    return [(f.sequence, f.fault) for f in failures]


@pytest.mark.parametrize("algorithm", list(HashAlgorithm))
def test_a_clean_chain_has_no_failures(algorithm: HashAlgorithm) -> None:
    data, links = chained(10, algorithm=algorithm)
    assert check_chain(PROVIDER, stored(data, links), algorithm) == []
    assert links[0].previous_hash == GENESIS
    assert [link.previous_hash for link in links[1:]] == [link.link_hash for link in links[:-1]]


def test_the_link_is_the_fixed_entry_and_its_hash() -> None:
    event_hash = digest(HashAlgorithm.SHA256, event_bytes(access_event()))
    link = append(None, event_hash)
    entry = b"\x01" + (0).to_bytes(8, "big") + bytes(32) + event_hash
    assert link.entry() == entry == link_entry(0, GENESIS, event_hash)
    assert link.link_hash == digest(HashAlgorithm.SHA256, entry)
    second = append(link, event_hash)
    assert second.sequence == 1
    assert second.previous_hash == link.link_hash
    assert second.link_hash != link.link_hash  # the same event at another place is another link


@pytest.mark.parametrize("position", [0, 4, 9])
def test_one_changed_byte_is_named(position: int) -> None:
    data, links = chained(10)
    records = stored(data, links)
    body = bytearray(records[position].event)
    at = body.index(b'"personCount":') + len(b'"personCount":')
    body[at] = ord("9") if body[at] != ord("9") else ord("8")  # 1004 persons become 9004
    records[position] = dataclasses.replace(records[position], event=bytes(body))
    failures = check_chain(PROVIDER, records)
    assert faults(failures) == [(position, Fault.TAMPERED)]
    assert failures[0].event_id == parse_event(data[position]).event_id


def test_an_edit_with_recomputed_hashes_breaks_the_next_link() -> None:
    data, links = chained(5)
    records = stored(data, links)
    edited = event_bytes(access_event(2, purpose="marketing"))
    event_hash = digest(HashAlgorithm.SHA256, edited)
    link_hash = digest(HashAlgorithm.SHA256, link_entry(2, records[2].previous_hash, event_hash))
    records[2] = dataclasses.replace(
        records[2], event=edited, event_hash=event_hash, link_hash=link_hash
    )
    assert faults(check_chain(PROVIDER, records)) == [(3, Fault.BROKEN_LINK)]


def test_a_deleted_event_is_named_by_the_gap() -> None:
    data, links = chained(6)
    records = stored(data, links)
    del records[3]
    failures = check_chain(PROVIDER, records)
    assert faults(failures) == [(4, Fault.GAP), (4, Fault.BROKEN_LINK)]
    assert "3..3" in failures[0].detail


def test_a_deleted_last_event_is_not_visible_in_the_chain_alone() -> None:
    """Only the signed, anchored batch root shows a truncated tail (tests/ledger/test_store)."""
    data, links = chained(4)
    assert check_chain(PROVIDER, stored(data, links)[:-1]) == []


def test_two_swapped_events_are_both_named() -> None:
    data, links = chained(6)
    records = stored(data, links)
    records[2], records[3] = (
        dataclasses.replace(records[3], sequence=2),
        dataclasses.replace(records[2], sequence=3),
    )
    assert faults(check_chain(PROVIDER, records)) == [
        (2, Fault.TAMPERED),
        (2, Fault.BROKEN_LINK),
        (3, Fault.TAMPERED),
        (3, Fault.BROKEN_LINK),
        (4, Fault.BROKEN_LINK),
    ]


def test_a_repeated_sequence_is_out_of_order() -> None:
    data, links = chained(3)
    records = stored(data, links)
    records.append(records[1])
    assert (1, Fault.OUT_OF_ORDER) in faults(check_chain(PROVIDER, records))


def test_another_participants_event_is_named() -> None:
    data, links = chained(3, participant=CONSUMER)
    assert faults(check_chain(PROVIDER, stored(data, links))) == [
        (0, Fault.WRONG_PARTICIPANT),
        (1, Fault.WRONG_PARTICIPANT),
        (2, Fault.WRONG_PARTICIPANT),
    ]


def test_unreadable_bytes_are_named() -> None:
    data, links = chained(2)
    records = stored(data, links)
    records[1] = dataclasses.replace(records[1], event=b"not json")
    assert faults(check_chain(PROVIDER, records)) == [(1, Fault.UNREADABLE), (1, Fault.TAMPERED)]


def test_a_chain_checked_from_the_middle_continues_from_its_start() -> None:
    data, links = chained(6)
    records = stored(data, links)
    assert check_chain(PROVIDER, records[3:], start=links[2]) == []
    assert faults(check_chain(PROVIDER, records[3:], start=links[1])) == [
        (3, Fault.GAP),
        (3, Fault.BROKEN_LINK),
    ]
