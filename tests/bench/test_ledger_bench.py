"""The ledger benchmark measures what it says: no timing here (bench/ measures, tests check)."""

from __future__ import annotations

from pathlib import Path

from sqlmodel import Session

from bench.ledger_bench import CHUNK, PROVIDER, Ledger, build_chunk, end_to_end, make_event
from ledger import store
from ledger.canonical import event_bytes
from ledger.chain import Chain, address_of


def test_the_benchmarked_events_are_full_regulator_records() -> None:
    event = make_event(7)
    assert event.personal_information
    assert event.person_count > 0
    assert event.counterparty is not None
    assert event.provider_pid is not None
    chunk = build_chunk(0)
    assert len(chunk) == CHUNK
    assert chunk[7].body == event_bytes(
        make_event(7).model_copy(update={"event_id": chunk[7].event_id})
    )


def test_end_to_end_stores_batches_signs_and_anchors_every_event(tmp_path: Path) -> None:
    chain = Chain.in_process()
    assert end_to_end(chain, tmp_path, 2 * CHUNK, workers=1) > 0


def test_the_ledger_it_builds_verifies(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path, Chain.in_process(), batch=CHUNK)
    ledger.take(build_chunk(0))
    ledger.seal_and_anchor(flush=True)
    [result] = ledger.results
    assert (result.anchor.first_event, result.anchor.last_event) == (0, CHUNK - 1)
    with Session(ledger.engine) as session:
        assert store.verify(session, PROVIDER).ok
        batch = session.get(store.BatchRecord, (PROVIDER, 0))
    assert batch is not None
    assert batch.anchor_block == result.anchor.block_number
    header = store.header_of(batch)
    assert ledger.registry.verify_root(address_of(ledger.account), header).root == header.root_bytes
