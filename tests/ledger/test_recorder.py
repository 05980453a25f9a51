"""The participant's pipeline: events recorded in the caller's transactions, batches closed by
count and age with a clock the test moves, signed, stored, anchored once, and picked up again
after a restart or while the chain was down."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from ledger import store
from ledger.batches import verify_signed_header
from ledger.chain import AnchorRegistry, Chain, ChainError, ChainFault, address_of, new_account_key
from ledger.database import migrations
from ledger.recorder import Recorder
from storage.engine import create_engine
from storage.migrate import upgrade
from tests.ledger import nodetools
from tests.ledger.factories import PROVIDER, access_event, participant_key
from tests.loopback import free_port


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Engine]:
    engine = create_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    upgrade(engine, migrations())
    yield engine
    engine.dispose()


def registered_on(chain: Chain) -> tuple[AnchorRegistry, bytes]:
    """The registry deployed on ``chain``, with one registered participant account."""
    operator, account = new_account_key(), new_account_key()
    for key in (operator, account):
        chain.dev_fund(address_of(key))
    registry = chain.deploy(operator)
    registry.register(operator, address_of(account), PROVIDER)
    return registry, account


@pytest.fixture
def deployed() -> tuple[AnchorRegistry, bytes]:
    """A fresh in-process chain with the registry and one registered participant account."""
    return registered_on(Chain.in_process())


KEY, DOCUMENT = participant_key()


def recorder(engine: Engine, clock: Clock, max_events: int = 10) -> Recorder:
    return Recorder(
        engine, PROVIDER, KEY.key_id, KEY.private_key,
        max_events=max_events, max_age_s=5.0, clock=clock,
    )  # fmt: skip


def record(rec: Recorder, first: int, count: int) -> None:
    with Session(rec.engine) as session:
        rec.record(session, [access_event(n) for n in range(first, first + count)])
        session.commit()


def test_batches_close_by_count_then_by_age(ledger: Engine) -> None:
    clock = Clock()
    rec = recorder(ledger, clock)
    record(rec, 0, 25)
    assert [(h.first_sequence, h.last_sequence) for h in rec.seal()] == [(0, 9), (10, 19)]
    clock.now += 4.9
    assert rec.seal() == []
    clock.now += 0.1
    [aged] = rec.seal()
    assert (aged.batch_sequence, aged.first_sequence, aged.last_sequence) == (2, 20, 24)
    with Session(ledger) as session:
        for batch in store.unanchored(session, PROVIDER):
            assert verify_signed_header(batch.signed_header, DOCUMENT).root_bytes == batch.root
        assert store.verify(session, PROVIDER, DOCUMENT).ok


def test_a_rolled_back_transaction_never_reaches_a_batch(ledger: Engine) -> None:
    rec = recorder(ledger, Clock(), max_events=2)
    with Session(ledger) as session:
        rec.record(session, [access_event(0), access_event(1)])
        session.rollback()
    assert rec.seal(flush=True) == []
    record(rec, 0, 2)
    [header] = rec.seal()
    assert (header.first_sequence, header.last_sequence) == (0, 1)


def test_a_restarted_recorder_continues_the_numbering(ledger: Engine) -> None:
    clock = Clock()
    rec = recorder(ledger, clock)
    record(rec, 0, 14)
    rec.seal()
    again = recorder(ledger, clock)
    record(again, 14, 6)
    [header] = again.seal()
    assert (header.batch_sequence, header.first_sequence, header.last_sequence) == (1, 10, 19)
    with Session(ledger) as session:
        assert store.verify(session, PROVIDER, DOCUMENT).ok


def test_batches_are_anchored_once_even_after_a_lost_answer(
    ledger: Engine, deployed: tuple[AnchorRegistry, bytes]
) -> None:
    registry, account = deployed
    rec = recorder(ledger, Clock())
    record(rec, 0, 30)
    headers = rec.seal()
    # The first batch reaches the chain, but the answer is lost before it is marked.
    registry.anchor(account, headers[0])
    block = registry.chain.block_number()
    results = rec.anchor(registry, account)
    assert [r.already_anchored for r in results] == [True, False, False]
    assert registry.chain.block_number() == block + 2
    assert rec.anchor(registry, account) == []
    with Session(ledger) as session:
        assert store.unanchored(session, PROVIDER) == []
    for header in headers:
        assert registry.verify_root(address_of(account), header).root == header.root_bytes


def test_batches_wait_while_the_chain_is_down(
    ledger: Engine, deployed: tuple[AnchorRegistry, bytes]
) -> None:
    registry, account = deployed
    rec = recorder(ledger, Clock())
    record(rec, 0, 20)
    rec.seal()
    down = Chain.connect(f"http://127.0.0.1:{free_port()}", timeout_s=2)
    unreachable = down.registry(registry.address, check_code=False)
    with pytest.raises(ChainError) as caught:
        rec.anchor(unreachable, account)
    assert caught.value.fault is ChainFault.UNREACHABLE
    with Session(ledger) as session:
        assert len(store.unanchored(session, PROVIDER)) == 2
    assert [r.already_anchored for r in rec.anchor(registry, account)] == [False, False]


@pytest.fixture(scope="module")
def anvil_url() -> Iterator[str]:
    with nodetools.anvil() as url:
        yield url


@pytest.fixture(params=["in-process", "anvil"])
def any_chain(request: pytest.FixtureRequest) -> tuple[AnchorRegistry, bytes]:
    """A registry with one registered account, on web3's in-process chain or on anvil."""
    if request.param == "in-process":
        return registered_on(Chain.in_process())
    return registered_on(Chain.connect(request.getfixturevalue("anvil_url"), timeout_s=10))


def test_anchors_a_reorganisation_dropped_are_anchored_again(
    ledger: Engine, any_chain: tuple[AnchorRegistry, bytes]
) -> None:
    """The chain goes back to a block before the last two anchors (``evm_revert``: what a
    reorganisation does to them): the recorder sees it, queues those batches again and
    anchors them anew, after the one the chain kept; every root verifies again."""
    registry, account = any_chain
    me = address_of(account)
    rec = recorder(ledger, Clock())
    record(rec, 0, 10)
    rec.seal()
    rec.anchor(registry, account)
    provider = registry.chain.w3.provider
    snapshot = provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    record(rec, 10, 20)
    headers = rec.seal()
    assert len(rec.anchor(registry, account)) == 2
    assert rec.recheck(registry, me) == []  # nothing lost: nothing queued
    provider.make_request("evm_revert", [snapshot])  # type: ignore[arg-type]
    assert registry.anchor_count(me) == 1

    assert rec.recheck(registry, me) == [1, 2]
    with Session(ledger) as session:
        assert [b.batch_sequence for b in store.unanchored(session, PROVIDER)] == [1, 2]
    again = rec.anchor(registry, account)
    assert [r.anchor.batch_sequence for r in again] == [1, 2]
    for header in headers:
        assert registry.verify_root(me, header).root == header.root_bytes
    with Session(ledger) as session:
        for result in again:
            stored = session.get(store.BatchRecord, (PROVIDER, result.anchor.batch_sequence))
            assert stored is not None
            assert (stored.anchor_block, stored.anchor_transaction) == (
                result.anchor.block_number, result.transaction_hash)  # fmt: skip
    assert rec.recheck(registry, me) == []


def test_an_anchor_mined_again_in_another_block_is_followed(
    ledger: Engine, deployed: tuple[AnchorRegistry, bytes]
) -> None:
    """The batch was anchored, the chain went back, and the same anchor was mined again in a
    later block (here: sent again by another process): the stored block and transaction
    follow the chain, and nothing is queued."""
    registry, account = deployed
    me = address_of(account)
    rec = recorder(ledger, Clock())
    record(rec, 0, 10)
    [header] = rec.seal()
    provider = registry.chain.w3.provider
    snapshot = provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    [first] = rec.anchor(registry, account)
    provider.make_request("evm_revert", [snapshot])  # type: ignore[arg-type]
    registry.chain.dev_fund(address_of(new_account_key()))  # a block in between
    second = registry.anchor(account, header)
    assert second.anchor.block_number != first.anchor.block_number
    assert rec.recheck(registry, me) == []
    with Session(ledger) as session:
        stored = session.get(store.BatchRecord, (PROVIDER, 0))
        assert stored is not None
        assert (stored.anchor_block, stored.anchor_transaction) == (
            second.anchor.block_number, second.transaction_hash)  # fmt: skip
