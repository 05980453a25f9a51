"""Following an anchor that a reorganisation moved (``ledger.proofs.follow_anchor``), the chain
replaced by what it answers: a new block, or a new transaction in the same block, is stored;
the anchor where the archive says is left alone."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from sqlmodel import Session

from ledger.chain import AnchorRegistry, OnChainAnchor
from ledger.proofs import follow_anchor
from ledger.store import BatchRecord

OLD, NEW = "0x" + "aa" * 32, "0x" + "bb" * 32


class Chain:
    """The registry's one answer used here: the transaction of an anchor's log."""

    def __init__(self, transaction: str) -> None:
        self.transaction, self.asked = transaction, 0

    def anchor_transaction(self, _anchor: OnChainAnchor) -> str:
        self.asked += 1
        return self.transaction


def batch() -> BatchRecord:
    return BatchRecord(
        participant="did:web:bureau.test", batch_sequence=0, first_sequence=0,
        last_sequence=9, root=b"r" * 32, signed_header="h.p.s",
        closed_at=datetime(2026, 12, 3, tzinfo=UTC), anchor_block=5, anchor_transaction=OLD,
    )  # fmt: skip


def anchor(block: int) -> OnChainAnchor:
    return OnChainAnchor("0x" + "11" * 20, 0, b"r" * 32, b"p" * 32, 0, 9, block, 0)


class Kept:
    """The caller's session: what is added to it."""

    def __init__(self) -> None:
        self.added: list[object] = []

    def add(self, row: object) -> None:
        self.added.append(row)


def follow(record: BatchRecord, block: int, chain: Chain, **options: Any) -> Any:
    session = Kept()
    moved = follow_anchor(
        cast(Session, session), record, anchor(block), cast(AnchorRegistry, chain), **options
    )
    assert session.added == ([] if moved is None else [record])
    return moved


def test_a_new_block_is_followed() -> None:
    record = batch()
    moved = follow(record, 7, Chain(NEW))
    assert (moved.from_block, moved.to_block, moved.transaction) == (5, 7, NEW)
    assert (record.anchor_block, record.anchor_transaction) == (7, NEW)


def test_a_new_transaction_in_the_same_block_is_followed() -> None:
    """After a reorganisation the anchor was sent again and landed at the same height."""
    record = batch()
    moved = follow(record, 5, Chain(NEW))
    assert (moved.to_block, moved.transaction) == (5, NEW)
    assert record.anchor_transaction == NEW


def test_an_anchor_where_the_archive_says_is_left_alone() -> None:
    record, chain = batch(), Chain(OLD)
    assert follow(record, 5, chain) is None
    assert (record.anchor_block, record.anchor_transaction, chain.asked) == (5, OLD, 1)
    unasked = Chain(NEW)
    assert follow(record, 5, unasked, same_block_too=False) is None
    assert unasked.asked == 0  # the recorder's own check: by block alone, no log query
