"""The chain adapter against web3's in-process chain and a real anvil: deploy, register, anchor
once, read back, verify; the contract's refusals; a node that is down, slow or talks garbage;
anvil's state kept across a restart."""

from __future__ import annotations

import contextlib
import http.server
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from ledger.batches import BatchHeader, build_header
from ledger.chain import (
    AnchorRegistry,
    Chain,
    ChainError,
    ChainFault,
    Status,
    address_of,
    caip10,
    new_account_key,
    signing_backend,
)
from ledger.hashchain import GENESIS
from ledger.machine import BatchReady, Closed
from tests.ledger import nodetools
from tests.ledger.factories import PROVIDER, T0, chained
from tests.loopback import free_port


@pytest.fixture(scope="module")
def anvil_url() -> Iterator[str]:
    with nodetools.anvil() as url:
        yield url


@pytest.fixture(params=["in-process", "anvil"])
def chain(request: pytest.FixtureRequest) -> Chain:
    if request.param == "in-process":
        return Chain.in_process()
    url: str = request.getfixturevalue("anvil_url")
    return Chain.connect(url, timeout_s=10)


class Space:
    """A registry deployed by an operator, with one registered participant."""

    def __init__(self, chain: Chain) -> None:
        self.chain = chain
        self.operator = new_account_key()
        self.participant = new_account_key()
        for key in (self.operator, self.participant):
            chain.dev_fund(address_of(key))
        self.registry: AnchorRegistry = chain.deploy(self.operator)
        self.registry.register(self.operator, address_of(self.participant), PROVIDER)
        _data, self.links = chained(10)

    def header(self, batch: int, first: int, last: int, previous: bytes) -> BatchHeader:
        ready = BatchReady(batch, first, last, Closed.FULL)
        header, _tree = build_header(PROVIDER, ready, self.links[first : last + 1], previous, T0)
        return header


@pytest.fixture
def space(chain: Chain) -> Space:
    return Space(chain)


def batches(space: Space) -> tuple[BatchHeader, BatchHeader]:
    first = space.header(0, 0, 3, GENESIS)
    return first, space.header(1, 4, 9, first.root_bytes)


def test_a_participant_anchors_its_batches_in_order(space: Space) -> None:
    first, second = batches(space)
    me = address_of(space.participant)
    assert space.registry.status(me) is Status.ACTIVE
    assert space.registry.operator() == address_of(space.operator)
    one = space.registry.anchor(space.participant, first)
    two = space.registry.anchor(space.participant, second)
    assert not one.already_anchored
    assert one.transaction_hash is not None
    assert one.gas_used is not None
    assert 40_000 < one.gas_used < 150_000
    on_chain = space.registry.anchors(me)
    assert [a.root for a in on_chain] == [first.root_bytes, second.root_bytes]
    assert [(a.first_event, a.last_event) for a in on_chain] == [(0, 3), (4, 9)]
    assert on_chain[1].previous_root == first.root_bytes
    assert on_chain[0].previous_root == GENESIS
    assert on_chain[1].block_number > on_chain[0].block_number
    assert space.registry.verify_root(me, second) == two.anchor


def test_anchoring_a_batch_already_on_chain_sends_nothing(space: Space) -> None:
    first, _ = batches(space)
    space.registry.anchor(space.participant, first)
    block = space.chain.block_number()
    again = space.registry.anchor(space.participant, first)
    assert again.already_anchored
    assert again.transaction_hash is None
    assert space.chain.block_number() == block
    assert space.registry.anchor_count(address_of(space.participant)) == 1


def test_another_root_for_an_anchored_batch_is_a_conflict(space: Space) -> None:
    first, _ = batches(space)
    space.registry.anchor(space.participant, first)
    other = first.model_copy(update={"root": "42" * 32})
    with pytest.raises(ChainError) as caught:
        space.registry.anchor(space.participant, other)
    assert caught.value.fault is ChainFault.CONFLICT
    with pytest.raises(ChainError) as caught:
        space.registry.verify_root(address_of(space.participant), other)
    assert caught.value.fault is ChainFault.ROOT_MISMATCH


def test_a_batch_whose_predecessor_is_not_on_chain_is_not_sent(space: Space) -> None:
    _, second = batches(space)
    with pytest.raises(ChainError, match=r"batches 0\.\.0") as caught:
        space.registry.anchor(space.participant, second)
    assert caught.value.fault is ChainFault.WRONG_SEQUENCE


def send_anchor(
    space: Space, batch: int, root: bytes, previous: bytes, first: int, last: int
) -> None:
    """Straight to the contract, past the adapter's own checks."""
    function = space.registry.contract.functions.anchor(batch, root, previous, first, last)
    space.chain.transact("anchor", space.participant, function.build_transaction)


@pytest.mark.parametrize(
    ("batch", "previous", "first", "last", "fault"),
    [
        pytest.param(1, "first", 4, 9, ChainFault.WRONG_SEQUENCE, id="skipped-batch"),
        pytest.param(0, "first", 4, 9, ChainFault.WRONG_SEQUENCE, id="repeated-batch"),
        pytest.param(1, "zero", 4, 9, ChainFault.WRONG_PREVIOUS_ROOT, id="previous-root-zero"),
        pytest.param(1, "other", 4, 9, ChainFault.WRONG_PREVIOUS_ROOT, id="forked-history"),
        pytest.param(1, "first", 5, 9, ChainFault.WRONG_RANGE, id="events-skipped"),
        pytest.param(1, "first", 3, 9, ChainFault.WRONG_RANGE, id="events-overlap"),
        pytest.param(1, "first", 4, 3, ChainFault.WRONG_RANGE, id="empty-range"),
    ],
)
def test_the_contract_refuses_a_batch_that_does_not_continue_the_history(
    space: Space, batch: int, previous: str, first: int, last: int, fault: ChainFault
) -> None:
    head, _ = batches(space)
    space.registry.anchor(space.participant, head)
    if batch == 1 and fault is ChainFault.WRONG_SEQUENCE:
        batch = 2
    roots = {"first": head.root_bytes, "zero": GENESIS, "other": b"\x07" * 32}
    with pytest.raises(ChainError) as caught:
        send_anchor(space, batch, b"\x09" * 32, roots[previous], first, last)
    assert caught.value.fault is fault
    assert space.registry.anchor_count(address_of(space.participant)) == 1


def test_the_first_batch_starts_at_event_zero_with_no_previous_root(space: Space) -> None:
    with pytest.raises(ChainError) as caught:
        send_anchor(space, 0, b"\x09" * 32, b"\x01" * 32, 0, 3)
    assert caught.value.fault is ChainFault.WRONG_PREVIOUS_ROOT
    with pytest.raises(ChainError) as caught:
        send_anchor(space, 0, b"\x09" * 32, GENESIS, 1, 3)
    assert caught.value.fault is ChainFault.WRONG_RANGE
    with pytest.raises(ChainError) as caught:
        send_anchor(space, 0, GENESIS, GENESIS, 0, 3)
    assert caught.value.fault is ChainFault.EMPTY_ROOT


def test_an_unregistered_participant_cannot_anchor(space: Space) -> None:
    stranger = new_account_key()
    space.chain.dev_fund(address_of(stranger))
    first, _ = batches(space)
    with pytest.raises(ChainError) as caught:
        space.registry.anchor(stranger, first)
    assert caught.value.fault is ChainFault.NOT_REGISTERED
    assert space.registry.status(address_of(stranger)) is Status.UNKNOWN


def test_a_suspended_participant_cannot_anchor_until_reinstated(space: Space) -> None:
    me = address_of(space.participant)
    first, _ = batches(space)
    space.registry.suspend(space.operator, me)
    assert space.registry.status(me) is Status.SUSPENDED
    with pytest.raises(ChainError) as caught:
        space.registry.anchor(space.participant, first)
    assert caught.value.fault is ChainFault.SUSPENDED
    space.registry.reinstate(space.operator, me)
    assert not space.registry.anchor(space.participant, first).already_anchored


def test_only_the_operator_registers_and_suspends(space: Space) -> None:
    me = address_of(space.participant)
    actions: list[Callable[[], None]] = [
        lambda: space.registry.register(space.participant, address_of(new_account_key()), PROVIDER),
        lambda: space.registry.suspend(space.participant, me),
        lambda: space.registry.reinstate(space.participant, me),
    ]
    for action in actions:
        with pytest.raises(ChainError) as caught:
            action()
        assert caught.value.fault is ChainFault.NOT_OPERATOR
    with pytest.raises(ChainError) as caught:
        space.registry.register(space.operator, me, PROVIDER)
    assert caught.value.fault is ChainFault.ALREADY_REGISTERED
    with pytest.raises(ChainError) as caught:
        space.registry.suspend(space.operator, address_of(new_account_key()))
    assert caught.value.fault is ChainFault.NOT_REGISTERED


def test_reading_an_anchor_that_does_not_exist(space: Space) -> None:
    first, _ = batches(space)
    with pytest.raises(ChainError) as caught:
        space.registry.verify_root(address_of(space.participant), first)
    assert caught.value.fault is ChainFault.NO_SUCH_ANCHOR


def test_an_address_without_the_contract_is_refused(chain: Chain) -> None:
    with pytest.raises(ChainError) as caught:
        chain.registry(address_of(new_account_key()))
    assert caught.value.fault is ChainFault.NOT_DEPLOYED
    with pytest.raises(ChainError) as caught:
        chain.registry("0x1234")
    assert caught.value.fault is ChainFault.NOT_DEPLOYED


def test_an_account_without_funds_is_refused_with_a_reason(chain: Chain) -> None:
    with pytest.raises(ChainError) as caught:
        chain.deploy(new_account_key())
    assert caught.value.fault is ChainFault.REFUSED
    assert "fund" in caught.value.message.lower() or "balance" in caught.value.message.lower()


def test_eth_account_signs_with_coincurve() -> None:
    assert signing_backend() == "CoinCurveECCBackend"


def test_accounts_are_published_as_caip_10() -> None:
    key = new_account_key()
    assert len(key) == 32
    address = address_of(key)
    assert caip10(31337, address.lower()) == f"eip155:31337:{address}"


def test_a_chain_that_is_down_is_unreachable_at_once() -> None:
    chain = Chain.connect(f"http://127.0.0.1:{free_port()}", timeout_s=5)
    started = time.monotonic()
    with pytest.raises(ChainError) as caught:
        _ = chain.chain_id
    assert caught.value.fault is ChainFault.UNREACHABLE
    assert time.monotonic() - started < 5


@pytest.fixture
def silent_server() -> Iterator[int]:
    """Accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    yield listener.getsockname()[1]
    listener.close()


def test_a_chain_that_does_not_answer_times_out(silent_server: int) -> None:
    chain = Chain.connect(f"http://127.0.0.1:{silent_server}", timeout_s=0.5)
    started = time.monotonic()
    with pytest.raises(ChainError) as caught:
        chain.block_number()
    assert caught.value.fault is ChainFault.TIMEOUT
    assert time.monotonic() - started < 3


class Garbage(http.server.BaseHTTPRequestHandler):
    body = b""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def answering(body: bytes) -> Iterator[str]:
    """A loopback HTTP server answering every request with ``body``."""
    handler = type("Handler", (Garbage,), {"body": body})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"<html>not json</html>", id="not-json"),
        pytest.param(b'{"jsonrpc": "2.0", "id": 0, "result": "banana"}', id="wrong-result"),
        pytest.param(b'{"jsonrpc": "2.0", "id": 0}', id="no-result"),
        pytest.param(b"[1, 2, 3]", id="array"),
        pytest.param(b'{"jsonrpc": "2.0", "id": 0, "error": "boom"}', id="malformed-error"),
    ],
)
def test_a_chain_talking_garbage_is_refused(body: bytes) -> None:
    with answering(body) as url:
        chain = Chain.connect(url, timeout_s=2)
        with pytest.raises(ChainError) as caught:
            chain.block_number()
        assert caught.value.fault is ChainFault.GARBAGE
        with pytest.raises(ChainError):
            chain.registry(address_of(new_account_key()))


def test_a_chain_answering_an_error_refuses() -> None:
    body = b'{"jsonrpc": "2.0", "id": 0, "error": {"code": -32000, "message": "boom"}}'
    with answering(body) as url:
        with pytest.raises(ChainError, match="boom") as caught:
            Chain.connect(url, timeout_s=2).block_number()
        assert caught.value.fault is ChainFault.REFUSED


def rpc(chain: Chain, method: str, *params: object) -> Any:
    """A development node's own methods (anvil: balances, mining)."""
    return cast(Any, chain.w3.provider).make_request(method, list(params))


def test_an_anchor_whose_receipt_never_came_is_not_sent_twice() -> None:
    """A node that takes transactions but mines nothing: each wait ends at the deadline; once
    the block is mined, anchoring again finds the batch on chain and sends nothing."""
    with nodetools.anvil(None, "--no-mining") as url:
        chain = Chain.connect(url, timeout_s=1)
        operator, account = new_account_key(), new_account_key()
        for key in (operator, account):
            rpc(chain, "anvil_setBalance", address_of(key), hex(10**18))
        with pytest.raises(ChainError) as caught:
            chain.deploy(operator)
        assert caught.value.fault is ChainFault.TIMEOUT
        rpc(chain, "evm_mine")
        [deployment] = rpc(chain, "eth_getBlockByNumber", "latest", False)["result"]["transactions"]
        receipt = rpc(chain, "eth_getTransactionReceipt", deployment)["result"]
        registry = chain.registry(receipt["contractAddress"])
        with pytest.raises(ChainError):
            registry.register(operator, address_of(account), PROVIDER)
        rpc(chain, "evm_mine")
        header, _ = build_header(
            PROVIDER, BatchReady(0, 0, 3, Closed.FULL), chained(4)[1], GENESIS, T0
        )
        started = time.monotonic()
        with pytest.raises(ChainError) as caught:
            registry.anchor(account, header)
        assert caught.value.fault is ChainFault.TIMEOUT
        assert time.monotonic() - started < 5
        rpc(chain, "evm_mine")
        again = registry.anchor(account, header)
        assert again.already_anchored
        assert again.anchor.root == header.root_bytes
        assert registry.anchor_count(address_of(account)) == 1


def test_anvil_keeps_anchors_across_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "anvil-state.json"
    with nodetools.anvil(state) as url:
        space = Space(Chain.connect(url))
        first, second = batches(space)
        anchored = space.registry.anchor(space.participant, first)
        sent = space.registry.anchor_transaction(anchored.anchor)
        assert sent == anchored.transaction_hash
        address = space.registry.address
    assert state.stat().st_size > 0
    with nodetools.anvil(state) as url:
        registry = Chain.connect(url).registry(address)
        me = address_of(space.participant)
        assert registry.verify_root(me, first).root == first.root_bytes
        # the block history too: a proof bundle names the anchoring transaction
        assert registry.anchor_transaction(registry.anchor_at(me, 0)) == sent
        assert registry.status(me) is Status.ACTIVE
        assert not registry.anchor(space.participant, second).already_anchored
        assert registry.anchor(space.participant, first).already_anchored


def test_the_in_process_chain_estimates_what_an_anchor_uses() -> None:
    """One run and a confirming run, not py-evm's search (which lands up to 21,000 above)."""
    space = Space(Chain.in_process())
    first, _second = batches(space)
    function = space.registry.contract.functions.anchor(0, first.root_bytes, GENESIS, 0, 3)
    estimate = function.estimate_gas({"from": address_of(space.participant)})
    result = space.registry.anchor(space.participant, first)
    assert result.gas_used == estimate


def test_a_transaction_needing_more_gas_than_it_uses_is_estimated_by_searching() -> None:
    """Creation code that stores 0 in slot 0 and stops: the SSTORE costs 2,200 gas (a cold
    slot, EIP-2929) but fails with 2,300 or less left (EIP-2200), so the gas it used is too
    little; the estimate falls back to py-evm's search and is enough."""
    w3 = Chain.in_process().w3
    sender = w3.eth.accounts[0]
    create: dict[str, Any] = {"from": sender, "data": "0x600060005500"}
    estimate = w3.eth.estimate_gas(cast(Any, create))
    enough = w3.eth.wait_for_transaction_receipt(
        w3.eth.send_transaction(cast(Any, create | {"gas": estimate}))
    )
    assert enough["status"] == 1
    used = enough["gasUsed"]
    assert estimate > used
    short = w3.eth.wait_for_transaction_receipt(
        w3.eth.send_transaction(cast(Any, create | {"gas": used}))
    )
    assert short["status"] == 0
