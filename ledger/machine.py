"""The batcher: a pure state machine that groups a participant's chained events into batches,
by count and by age (h11-style: events in, "batch ready" out; the clock is an argument).

A batch closes when it holds ``max_events`` events, or when its oldest event has waited
``max_age_s`` seconds (checked on every event and on :meth:`Batcher.tick`, which the caller
runs from its timer). Batches are numbered from 0 without gaps and cover consecutive event
sequence numbers, which is what the anchor contract requires. No I/O, no clock, no hashing
here: the caller builds the Merkle tree of a ready batch and signs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class BatchingError(ValueError):
    """An event out of sequence, or settings that cannot batch."""


class Closed(StrEnum):
    FULL = "full"
    AGED = "aged"
    FLUSHED = "flushed"


@dataclass(frozen=True)
class BatchReady:
    batch_sequence: int
    first_sequence: int
    last_sequence: int
    """Inclusive."""
    closed: Closed

    @property
    def size(self) -> int:
        return self.last_sequence - self.first_sequence + 1


class Batcher:
    def __init__(
        self,
        max_events: int,
        max_age_s: float,
        *,
        next_batch: int = 0,
        next_event: int = 0,
    ) -> None:
        if max_events < 1 or not max_age_s > 0:
            raise BatchingError("a batch holds at least one event and waits a positive time")
        if next_batch < 0 or next_event < 0:
            raise BatchingError("batch and event sequence numbers start at 0")
        self.max_events = max_events
        self.max_age_s = max_age_s
        self.next_batch = next_batch
        self.next_event = next_event
        self._first: int | None = None
        self._opened_at = 0.0

    @property
    def pending(self) -> int:
        return 0 if self._first is None else self.next_event - self._first

    def add(self, sequence: int, now: float) -> BatchReady | None:
        """Event ``sequence`` was chained at ``now`` (seconds on the caller's clock)."""
        if sequence != self.next_event:
            raise BatchingError(f"expected event {self.next_event}, got {sequence}")
        if self._first is None:
            self._first, self._opened_at = sequence, now
        self.next_event += 1
        if self.next_event - self._first >= self.max_events:
            return self._close(self._first, Closed.FULL)
        return self.tick(now)

    def tick(self, now: float) -> BatchReady | None:
        """The timer: closes the open batch once its first event is ``max_age_s`` old."""
        if self._first is not None and now - self._opened_at >= self.max_age_s:
            return self._close(self._first, Closed.AGED)
        return None

    def due_in(self, now: float) -> float | None:
        """Seconds until the open batch ages out (``None``: nothing is waiting)."""
        if self._first is None:
            return None
        return max(0.0, self._opened_at + self.max_age_s - now)

    def flush(self) -> BatchReady | None:
        """Close whatever is pending (on shut-down)."""
        return None if self._first is None else self._close(self._first, Closed.FLUSHED)

    def _close(self, first: int, closed: Closed) -> BatchReady:
        ready = BatchReady(self.next_batch, first, self.next_event - 1, closed)
        self.next_batch += 1
        self._first = None
        return ready
