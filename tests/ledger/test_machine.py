"""The batcher: batches close by count and by age, in order, with the caller's clock."""

from __future__ import annotations

import itertools

import pytest

from ledger.machine import Batcher, BatchingError, BatchReady, Closed


def test_a_batch_closes_when_full() -> None:
    batcher = Batcher(max_events=3, max_age_s=60)
    assert batcher.add(0, now=0.0) is None
    assert batcher.add(1, now=1.0) is None
    assert batcher.add(2, now=2.0) == BatchReady(0, 0, 2, Closed.FULL)
    assert batcher.pending == 0
    assert batcher.add(3, now=3.0) is None
    assert batcher.pending == 1


def test_a_batch_closes_when_its_first_event_is_old_enough() -> None:
    batcher = Batcher(max_events=100, max_age_s=5)
    batcher.add(0, now=10.0)
    batcher.add(1, now=12.0)
    assert batcher.tick(now=14.9) is None
    assert batcher.due_in(now=14.0) == pytest.approx(1.0)
    assert batcher.tick(now=15.0) == BatchReady(0, 0, 1, Closed.AGED)
    assert batcher.tick(now=100.0) is None
    assert batcher.due_in(now=100.0) is None


def test_an_event_arriving_late_closes_the_aged_batch_with_it() -> None:
    batcher = Batcher(max_events=100, max_age_s=5)
    batcher.add(0, now=0.0)
    assert batcher.add(1, now=6.0) == BatchReady(0, 0, 1, Closed.AGED)


def test_batches_are_numbered_without_gaps_over_consecutive_events() -> None:
    batcher = Batcher(max_events=4, max_age_s=1)
    ready = [r for n in range(10) if (r := batcher.add(n, now=n * 0.3)) is not None]
    flushed = batcher.flush()
    assert flushed is not None
    ready.append(flushed)
    assert [r.batch_sequence for r in ready] == list(range(len(ready)))
    assert ready[0].first_sequence == 0
    assert ready[-1].last_sequence == 9
    for before, after in itertools.pairwise(ready):
        assert after.first_sequence == before.last_sequence + 1
    assert sum(r.size for r in ready) == 10
    assert batcher.flush() is None


def test_a_batcher_resumes_after_a_restart() -> None:
    batcher = Batcher(max_events=2, max_age_s=1, next_batch=7, next_event=120)
    batcher.add(120, now=0)
    assert batcher.add(121, now=0) == BatchReady(7, 120, 121, Closed.FULL)


@pytest.mark.parametrize("sequence", [pytest.param(1, id="skipped"), pytest.param(-1, id="behind")])
def test_events_out_of_sequence_are_refused(sequence: int) -> None:
    batcher = Batcher(max_events=2, max_age_s=1)
    with pytest.raises(BatchingError, match="expected event 0"):
        batcher.add(sequence, now=0)
    batcher.add(0, now=0)
    with pytest.raises(BatchingError):
        batcher.add(0, now=0)


@pytest.mark.parametrize(
    ("max_events", "max_age_s"),
    [pytest.param(0, 1.0, id="no-events"), pytest.param(10, 0.0, id="no-time"), pytest.param(10, float("nan"), id="nan")],
)  # fmt: skip
def test_settings_that_cannot_batch_are_refused(max_events: int, max_age_s: float) -> None:
    with pytest.raises(BatchingError):
        Batcher(max_events, max_age_s)
