"""A participant's ledger at work: events appended in the caller's transactions, closed into
batches by count and age (:class:`ledger.machine.Batcher`), each batch signed with the
participant's DID key and stored, then anchored on the chain.

The batcher hears only of committed events (:meth:`Recorder.seal` reads them back), so a
rolled-back transaction never reaches a batch. Everything needed to go on after a crash is in the
database: :meth:`Recorder.resume` rebuilds the batcher from the last stored batch and the events
after it, and :meth:`Recorder.anchor` sends the batches not yet known to be on chain, oldest
first; one that reached the chain before the crash is recognised there and not sent again. When
the chain is down, batches wait in the database and the error goes to the caller.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine
from sqlmodel import Session

from identity.keys import PrivateKey
from ledger import store
from ledger.batches import BatchHeader, build_header, sign_header
from ledger.digests import HashAlgorithm
from ledger.events import LedgerEvent
from ledger.hashchain import GENESIS, Link
from ledger.machine import Batcher, BatchReady

if TYPE_CHECKING:  # the chain adapter (web3) is loaded only where batches are anchored
    from ledger.chain import AnchorRegistry, AnchorResult


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Recorder:
    def __init__(
        self,
        engine: Engine,
        participant: str,
        key_id: str,
        key: PrivateKey,
        *,
        max_events: int,
        max_age_s: float,
        clock: Callable[[], float],
        algorithm: HashAlgorithm = HashAlgorithm.SHA256,
        wall_clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.engine = engine
        self.participant = participant
        self.key_id = key_id
        self.key = key
        self.algorithm = algorithm
        self.clock = clock
        self.wall_clock = wall_clock
        self.max_events = max_events
        self.max_age_s = max_age_s
        self.batcher = Batcher(max_events, max_age_s)
        self._previous_root = GENESIS
        self.resume()

    def resume(self) -> None:
        """Rebuild the batcher from what is stored (at start, or after an error)."""
        with Session(self.engine) as session:
            last = store.last_batch(session, self.participant)
        next_batch = 0 if last is None else last.batch_sequence + 1
        next_event = 0 if last is None else last.last_sequence + 1
        self._previous_root = GENESIS if last is None else last.root
        self.batcher = Batcher(
            self.max_events, self.max_age_s, next_batch=next_batch, next_event=next_event
        )

    def record(
        self, session: Session, events: Sequence[LedgerEvent | store.HashedEvent]
    ) -> list[Link]:
        """Append ``events`` in ``session``'s transaction; the caller commits (or rolls back)."""
        return store.append(session, self.participant, events, self.algorithm)

    def seal(self, *, flush: bool = False) -> list[BatchHeader]:
        """Close the batches that are due (full, aged, or all pending with ``flush``), sign and
        store them. Returns their headers."""
        now = self.clock()
        with Session(self.engine) as session:
            head = store.head(session, self.participant)
            ready: list[BatchReady] = []
            if head is not None:
                for sequence in range(self.batcher.next_event, head.sequence + 1):
                    closed = self.batcher.add(sequence, now)
                    if closed is not None:
                        ready.append(closed)
            aged = self.batcher.tick(now)
            if aged is not None:
                ready.append(aged)
            if flush and (rest := self.batcher.flush()) is not None:
                ready.append(rest)
            headers = []
            for batch in ready:
                links = store.links(
                    session, self.participant, batch.first_sequence, batch.last_sequence
                )
                header, _tree = build_header(
                    self.participant,
                    batch,
                    links,
                    self._previous_root,
                    self.wall_clock(),
                    self.algorithm,
                )
                store.save_batch(session, header, sign_header(header, self.key_id, self.key))
                self._previous_root = header.root_bytes
                headers.append(header)
            session.commit()
        return headers

    def recheck(self, registry: AnchorRegistry, account: str) -> list[int]:
        """Compare what is marked anchored with what the chain holds now, and queue again the
        batches whose anchors it lost: a reorganisation that dropped their blocks, or a
        development chain restarted without its state. The contract holds a gapless sequence
        per account, so every batch from its count on is lost; each is anchored again by
        :meth:`anchor` (same root and range, after the last one the chain kept). The newest
        anchor it kept is read again too: a reorganisation may have mined it in another
        block, which is recorded (with its transaction). Returns the batches queued again.
        A :class:`ledger.chain.ChainError` leaves everything as it was; with nothing marked
        anchored, the chain is not asked."""
        with Session(self.engine) as session:
            if not store.anchored_from(session, self.participant, 0, limit=1):
                return []
        count = registry.anchor_count(account)
        with Session(self.engine) as session:
            lost = store.anchored_from(session, self.participant, count)
            if count:
                kept = session.get(store.BatchRecord, (self.participant, count - 1))
                if kept is not None and kept.anchor_block is not None:
                    self._follow(registry, account, session, kept)
            queued = [record.batch_sequence for record in lost]
            for record in lost:
                store.unmark_anchored(session, record)
            session.commit()
        return queued

    def _follow(
        self,
        registry: AnchorRegistry,
        account: str,
        session: Session,
        record: store.BatchRecord,
    ) -> None:
        from ledger.proofs import follow_anchor  # web3 behind it: see TYPE_CHECKING above

        anchor = registry.verify_root(account, store.header_of(record))
        follow_anchor(session, record, anchor, registry, same_block_too=False)

    def anchor(self, registry: AnchorRegistry, chain_key: bytes) -> list[AnchorResult]:
        """Anchor every stored batch not yet known to be on chain, oldest first, each marked
        in its own transaction. A :class:`ledger.chain.ChainError` stops the round; the rest
        stay queued for the next."""
        results = []
        with Session(self.engine) as session:
            pending = store.unanchored(session, self.participant)
        for record in pending:
            result = registry.anchor(chain_key, store.header_of(record))
            # on chain already (sent before a crash, or mined again after a reorganisation):
            # its transaction is read from the chain
            transaction = result.transaction_hash or registry.anchor_transaction(result.anchor)
            with Session(self.engine) as session:
                store.mark_anchored(
                    session,
                    self.participant,
                    record.batch_sequence,
                    transaction,
                    result.anchor.block_number,
                    self.wall_clock(),
                )
                session.commit()
            results.append(result)
        return results
