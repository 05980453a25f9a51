"""The chain adapter: the one module that imports web3. It deploys our ``AnchorRegistry``
contract (``ledger/contracts/``), lets the operator register and suspend participants, anchors
signed batch roots and reads them back.

Any EVM JSON-RPC endpoint works (anvil; Besu QBFT or FISCO BCOS 3 with its Web3 RPC), and so
does web3's in-process ``EthereumTesterProvider`` (py-evm). Transactions are signed here with
the sender's secp256k1 key (eth-account, which signs through coincurve when it is installed)
and sent raw: the node holds no key of ours.

Anchoring is idempotent by batch sequence: a batch whose root is already on chain is recognised
and not sent again, and the contract itself refuses a second anchor for the same number, so that
a retry after a lost answer never anchors twice. Every failure is a :class:`ChainError` with a
:class:`ChainFault`: the node down, too slow (each request and each wait for a receipt has a
deadline), answering garbage, or the contract refusing and why. No retry loop here: the caller
keeps its batches and tries again later.

py-evm and py_ecc raise the interpreter's recursion limit to 100,000 when they are imported;
with that limit, parsing deeply nested input (``json.loads`` of a 100,000-deep list) overflows
the C stack and kills the process instead of raising RecursionError. The limit is put back
right after the imports.
"""

# ruff: noqa: E402 - the recursion limit is read before the third-party imports and restored after

from __future__ import annotations

import sys

_RECURSION_LIMIT = sys.getrecursionlimit()

import ast
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from importlib import resources
from typing import Any, Final, TypeVar

import requests
from eth.estimators.gas import binary_gas_search_intrinsic_tolerance
from eth.vm.spoof import SpoofTransaction
from eth_abi.abi import decode as abi_decode
from eth_account import Account
from eth_keys import backends
from eth_tester import EthereumTester, PyEVMBackend  # type: ignore[import-untyped]
from eth_tester.exceptions import TransactionFailed  # type: ignore[import-untyped]
from eth_utils.exceptions import ValidationError as EthValidationError
from web3 import EthereumTesterProvider, HTTPProvider, Web3
from web3.contract import Contract
from web3.exceptions import (
    ContractCustomError,
    ContractLogicError,
    RequestTimedOut,
    TimeExhausted,
    Web3Exception,
    Web3RPCError,
)
from web3.types import TxParams, Wei

from ledger.batches import BatchHeader

sys.setrecursionlimit(_RECURSION_LIMIT)

ARTIFACT: Final = "AnchorRegistry.json"
DEFAULT_TIMEOUT_S: Final = 10.0
RECEIPT_POLL_S: Final = 0.02
DEV_FUNDS_WEI: Final = 10**18

T = TypeVar("T")


class ChainFault(StrEnum):
    UNREACHABLE = "chain_unreachable"
    TIMEOUT = "chain_timeout"
    GARBAGE = "chain_garbage"
    """An answer that is not a well-formed JSON-RPC result of the expected shape."""
    REVERTED = "transaction_reverted"
    REFUSED = "request_refused"
    """The node answered with an error: too little funds for the gas, a bad nonce, ..."""
    NOT_DEPLOYED = "registry_not_deployed"
    NOT_OPERATOR = "not_operator"
    ALREADY_REGISTERED = "already_registered"
    NOT_REGISTERED = "participant_not_registered"
    SUSPENDED = "participant_suspended"
    WRONG_SEQUENCE = "wrong_batch_sequence"
    WRONG_PREVIOUS_ROOT = "wrong_previous_root"
    WRONG_RANGE = "wrong_event_range"
    EMPTY_ROOT = "empty_root"
    NO_SUCH_ANCHOR = "no_such_anchor"
    CONFLICT = "conflicting_anchor"
    """The chain holds another root for this batch number."""
    ROOT_MISMATCH = "root_mismatch"


class ChainError(Exception):
    def __init__(self, fault: ChainFault, message: str) -> None:
        super().__init__(f"{fault.value}: {message}")
        self.fault = fault
        self.message = message


_CUSTOM_ERRORS: Final = {
    "NotOperator": ChainFault.NOT_OPERATOR,
    "AlreadyRegistered": ChainFault.ALREADY_REGISTERED,
    "NotRegistered": ChainFault.NOT_REGISTERED,
    "ParticipantIsSuspended": ChainFault.SUSPENDED,
    "WrongBatchSequence": ChainFault.WRONG_SEQUENCE,
    "WrongPreviousRoot": ChainFault.WRONG_PREVIOUS_ROOT,
    "WrongEventRange": ChainFault.WRONG_RANGE,
    "EmptyRoot": ChainFault.EMPTY_ROOT,
    "NoSuchAnchor": ChainFault.NO_SUCH_ANCHOR,
}


class Status(IntEnum):
    """The contract's ``Status``."""

    UNKNOWN = 0
    ACTIVE = 1
    SUSPENDED = 2


@dataclass(frozen=True)
class OnChainAnchor:
    participant: str
    batch_sequence: int
    root: bytes
    previous_root: bytes
    first_event: int
    last_event: int
    block_number: int
    timestamp: int


@dataclass(frozen=True)
class AnchorResult:
    anchor: OnChainAnchor
    transaction_hash: str | None
    """``None`` when the batch was already on chain and nothing was sent."""
    gas_used: int | None
    already_anchored: bool


def load_artifact() -> dict[str, Any]:
    """The committed ABI and bytecode (built by ``make contracts`` with solc-js)."""
    text = resources.files("ledger.contracts").joinpath(ARTIFACT).read_text(encoding="utf-8")
    artifact: dict[str, Any] = json.loads(text)
    return artifact


def signing_backend() -> str:
    """The secp256k1 implementation eth-account signs with (``CoinCurveECCBackend`` when
    coincurve is installed, else the pure-Python one, about 20 times slower)."""
    return type(backends.get_backend()).__name__


def new_account_key() -> bytes:
    """A fresh secp256k1 private key for a participant's chain account."""
    key: bytes = Account.create().key
    return bytes(key)


def address_of(private_key: bytes) -> str:
    address: str = Account.from_key(private_key).address
    return address


def sign_transaction(transaction: TxParams, key: bytes) -> bytes:
    """The raw signed transaction (secp256k1, through :func:`signing_backend`)."""
    signed = Account.sign_transaction(dict(transaction), key)
    return bytes(signed.raw_transaction)


def caip10(chain_id: int, address: str) -> str:
    """The account as a CAIP-10 id (``eip155:<chainId>:0x…``), for a DID document's
    ``blockchainAccountId``."""
    return f"eip155:{chain_id}:{Web3.to_checksum_address(address)}"


def _error_selectors(abi: list[dict[str, Any]]) -> dict[bytes, tuple[str, list[str]]]:
    selectors = {}
    for entry in abi:
        if entry.get("type") == "error":
            types = [i["type"] for i in entry["inputs"]]
            signature = f"{entry['name']}({','.join(types)})"
            selectors[bytes(Web3.keccak(text=signature)[:4])] = (entry["name"], types)
    return selectors


@contextmanager
def _guard(what: str, selectors: dict[bytes, tuple[str, list[str]]]) -> Iterator[None]:
    """Every failure of a chain call as a :class:`ChainError`."""
    try:
        yield
    except ChainError:
        raise
    except ContractCustomError as error:
        raise _custom_error(what, error, selectors) from None
    except ContractLogicError as error:
        raise ChainError(ChainFault.REVERTED, f"{what}: {error.message or error}") from None
    except TransactionFailed as error:
        raise _tester_revert(what, error, selectors) from None
    except (requests.Timeout, RequestTimedOut, TimeExhausted) as error:
        raise ChainError(ChainFault.TIMEOUT, f"{what}: {error}") from None
    except requests.ConnectionError as error:
        raise ChainError(ChainFault.UNREACHABLE, f"{what}: {type(error).__name__}") from None
    except (Web3RPCError, EthValidationError) as error:
        raise ChainError(ChainFault.REFUSED, f"{what}: {str(error)[:300]}") from None
    except (Web3Exception, requests.RequestException, ValueError, TypeError, KeyError) as error:
        # A node answering something that is not JSON-RPC, or not of the expected shape.
        detail = str(error)[:300] or type(error).__name__
        raise ChainError(ChainFault.GARBAGE, f"{what}: {detail}") from None


def _tester_revert(
    what: str, error: BaseException, selectors: dict[bytes, tuple[str, list[str]]]
) -> ChainError:
    """eth-tester (in process) reports a revert as its own exception, the payload as bytes."""
    cause: BaseException | None = error
    while cause is not None:
        if cause.args and isinstance(cause.args[0], bytes):
            return _decode_revert(what, cause.args[0], selectors)
        cause = cause.__context__
    text = str(error).removeprefix("execution reverted: ")
    if text.startswith(("b'", 'b"')):
        with suppress(ValueError, SyntaxError):
            payload = ast.literal_eval(text)
            if isinstance(payload, bytes):
                return _decode_revert(what, payload, selectors)
    return ChainError(ChainFault.REVERTED, f"{what}: {str(error)[:300]}")


def _custom_error(
    what: str, error: ContractCustomError, selectors: dict[bytes, tuple[str, list[str]]]
) -> ChainError:
    data = error.data if isinstance(error.data, str) else str(error.message)
    try:
        raw = bytes.fromhex(data.removeprefix("0x"))
    except ValueError:
        return ChainError(ChainFault.REVERTED, f"{what}: {data[:200]}")
    return _decode_revert(what, raw, selectors)


def _decode_revert(
    what: str, raw: bytes, selectors: dict[bytes, tuple[str, list[str]]]
) -> ChainError:
    known = selectors.get(raw[:4])
    if known is None:
        return ChainError(ChainFault.REVERTED, f"{what}: unknown error {raw[:4].hex()}")
    name, types = known
    try:
        values = abi_decode(types, raw[4:])
    except Exception:  # a malformed revert payload is only a reason less
        values = ()
    shown = ", ".join(v.hex() if isinstance(v, bytes) else str(v) for v in values)
    return ChainError(_CUSTOM_ERRORS.get(name, ChainFault.REVERTED), f"{what}: {name}({shown})")


class Chain:
    """A connection to one EVM chain."""

    def __init__(
        self, w3: Web3, *, timeout_s: float = DEFAULT_TIMEOUT_S, serialise: bool = False
    ) -> None:
        """``serialise``: one request at a time (py-evm in this process is not thread-safe,
        and a test's connectors and ledger service share it from their threads)."""
        self.w3 = w3
        self.timeout_s = timeout_s
        self._lock: AbstractContextManager[Any] = threading.RLock() if serialise else nullcontext()
        self.artifact = load_artifact()
        self._selectors = _error_selectors(self.artifact["abi"])
        self._chain_id: int | None = None

    @classmethod
    def connect(cls, url: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> Chain:
        """A JSON-RPC node over HTTP; every request gives up after ``timeout_s``."""
        provider = HTTPProvider(
            url, request_kwargs={"timeout": timeout_s}, exception_retry_configuration=None
        )
        return cls(Web3(provider), timeout_s=timeout_s)

    @classmethod
    def in_process(cls) -> Chain:
        """A fresh py-evm chain in this process (eth-tester), mining each transaction at once,
        estimating gas by :func:`estimate_by_running`."""
        backend = PyEVMBackend()
        backend.chain.gas_estimator = estimate_by_running
        return cls(Web3(EthereumTesterProvider(EthereumTester(backend))), serialise=True)

    def call(self, what: str, function: Callable[[], T]) -> T:
        with self._lock, _guard(what, self._selectors):
            return function()

    @property
    def chain_id(self) -> int:
        if self._chain_id is None:
            chain_id = self.call("chain id", lambda: self.w3.eth.chain_id)
            if not isinstance(chain_id, int):
                raise ChainError(ChainFault.GARBAGE, f"chain id {chain_id!r}")
            self._chain_id = chain_id
        return self._chain_id

    def block_number(self) -> int:
        number = self.call("block number", lambda: self.w3.eth.block_number)
        if not isinstance(number, int):
            raise ChainError(ChainFault.GARBAGE, f"block number {number!r}")
        return number

    def dev_fund(self, address: str, wei: int = DEV_FUNDS_WEI) -> None:
        """Give ``address`` ether from the node's first unlocked account: development chains
        only (anvil, eth-tester); a consortium chain funds accounts its own way, or has no fees."""

        def fund() -> None:
            source = self.w3.eth.accounts[0]
            sent = self.w3.eth.send_transaction(
                {"from": source, "to": Web3.to_checksum_address(address), "value": Wei(wei)}
            )
            self.w3.eth.wait_for_transaction_receipt(
                sent, timeout=self.timeout_s, poll_latency=RECEIPT_POLL_S
            )

        self.call("dev funding", fund)

    def transact(self, what: str, key: bytes, build: Callable[[TxParams], TxParams]) -> Any:
        """Sign and send the transaction ``build`` makes from the base fields; wait for its
        receipt. A revert (estimated or mined) raises with the contract's reason."""
        sender = Web3.to_checksum_address(address_of(key))

        def send() -> Any:
            base: TxParams = {
                "from": sender,
                "chainId": self.chain_id,
                "nonce": self.w3.eth.get_transaction_count(sender, "pending"),
            }
            sent = self.w3.eth.send_raw_transaction(sign_transaction(build(base), key))
            receipt = self.w3.eth.wait_for_transaction_receipt(
                sent, timeout=self.timeout_s, poll_latency=RECEIPT_POLL_S
            )
            if receipt["status"] != 1:
                raise ChainError(ChainFault.REVERTED, f"{what}: transaction {sent.hex()} failed")
            return receipt

        return self.call(what, send)

    def deploy(self, operator_key: bytes) -> AnchorRegistry:
        """Deploy a new registry whose operator is ``operator_key``'s account."""
        factory = self.w3.eth.contract(abi=self.artifact["abi"], bytecode=self.artifact["bytecode"])
        receipt = self.transact(
            "deploy", operator_key, lambda base: factory.constructor().build_transaction(base)
        )
        address = receipt["contractAddress"]
        if not isinstance(address, str):
            raise ChainError(ChainFault.GARBAGE, "the deployment receipt names no contract")
        return self.registry(address)

    def registry(self, address: str, *, check_code: bool = True) -> AnchorRegistry:
        """The registry at ``address`` (from settings); refused when no contract is there.
        ``check_code=False`` skips asking the node, for a service that starts while its chain
        is down (every later call still fails with the node's reason)."""
        try:
            checksum = Web3.to_checksum_address(address)
        except ValueError:
            raise ChainError(ChainFault.NOT_DEPLOYED, f"not an address: {address!r}") from None
        if check_code:
            code = self.call("registry code", lambda: self.w3.eth.get_code(checksum))
            if not code:
                raise ChainError(ChainFault.NOT_DEPLOYED, f"no contract at {checksum}")
        return AnchorRegistry(
            self, self.w3.eth.contract(address=checksum, abi=self.artifact["abi"])
        )


def _outcome(state: Any, transaction: Any) -> Any:
    """The computation of ``transaction`` run on ``state``, which is left as it was."""
    snapshot = state.snapshot()
    try:
        return state.apply_transaction(transaction)
    finally:
        state.revert(snapshot)


def estimate_by_running(state: Any, transaction: Any) -> int:
    """py-evm's gas estimate for the in-process chain: run the transaction once with the
    block's gas limit, take the gas it used, and run it again with exactly that much to
    confirm. py-evm's own estimator searches between the intrinsic gas and the block's limit,
    running the transaction about 14 times (most of an anchor's cost in process); it is still
    used when the confirmation fails: a call forwarding 63/64 of its gas, or an SSTORE that
    needs more left than it spends, needs more than it uses. Errors are py-evm's, as its own
    estimator raises them (a revert at the block's limit)."""
    full = _outcome(state, SpoofTransaction(transaction, gas=state.gas_limit, gas_price=0))
    if full.is_error:
        raise full.error
    used = transaction.intrinsic_gas + full.get_gas_used()
    if not _outcome(state, SpoofTransaction(transaction, gas=used)).is_error:
        return int(used)
    return int(binary_gas_search_intrinsic_tolerance(state, transaction))


class AnchorRegistry:
    """Our contract at one address."""

    def __init__(self, chain: Chain, contract: Contract) -> None:
        self.chain = chain
        self.contract = contract
        self.address: str = contract.address

    def operator(self) -> str:
        operator: str = self.chain.call(
            "operator", lambda: self.contract.functions.operator().call()
        )
        return operator

    def register(self, operator_key: bytes, account: str, did: str) -> None:
        """The operator registers a participant's chain account (at onboarding)."""
        target = Web3.to_checksum_address(account)
        self.chain.transact(
            "register",
            operator_key,
            lambda base: self.contract.functions.register(target, did).build_transaction(base),
        )

    def suspend(self, operator_key: bytes, account: str) -> None:
        target = Web3.to_checksum_address(account)
        self.chain.transact(
            "suspend",
            operator_key,
            lambda base: self.contract.functions.suspend(target).build_transaction(base),
        )

    def reinstate(self, operator_key: bytes, account: str) -> None:
        target = Web3.to_checksum_address(account)
        self.chain.transact(
            "reinstate",
            operator_key,
            lambda base: self.contract.functions.reinstate(target).build_transaction(base),
        )

    def status(self, account: str) -> Status:
        target = Web3.to_checksum_address(account)
        value = self.chain.call("status", lambda: self.contract.functions.statusOf(target).call())
        try:
            return Status(value)
        except ValueError:
            raise ChainError(ChainFault.GARBAGE, f"status {value!r}") from None

    def anchor_count(self, account: str) -> int:
        target = Web3.to_checksum_address(account)
        count = self.chain.call(
            "anchor count", lambda: self.contract.functions.anchorCount(target).call()
        )
        if not isinstance(count, int) or count < 0:
            raise ChainError(ChainFault.GARBAGE, f"anchor count {count!r}")
        return count

    def anchor_at(self, account: str, batch_sequence: int) -> OnChainAnchor:
        target = Web3.to_checksum_address(account)
        value = self.chain.call(
            "anchor",
            lambda: self.contract.functions.anchorAt(target, batch_sequence).call(),
        )
        try:
            root, previous_root, first, last, block, timestamp = value
            return OnChainAnchor(
                target, batch_sequence, bytes(root), bytes(previous_root),
                int(first), int(last), int(block), int(timestamp),
            )  # fmt: skip
        except (TypeError, ValueError):
            raise ChainError(ChainFault.GARBAGE, f"anchor {value!r}") from None

    def did_of(self, account: str) -> str:
        """The DID the operator registered ``account`` for (empty when it never did)."""
        target = Web3.to_checksum_address(account)
        did = self.chain.call("did", lambda: self.contract.functions.didOf(target).call())
        if not isinstance(did, str):
            raise ChainError(ChainFault.GARBAGE, f"did {did!r}")
        return did

    def anchor_transaction(self, anchor: OnChainAnchor) -> str:
        """The hash of the transaction that anchored ``anchor``: its ``Anchored`` log, in the
        block the contract recorded for it."""

        def find() -> list[Any]:
            logs: list[Any] = self.contract.events.Anchored().get_logs(
                from_block=anchor.block_number,
                to_block=anchor.block_number,
                argument_filters={
                    "participant": Web3.to_checksum_address(anchor.participant),
                    "batchSequence": anchor.batch_sequence,
                },
            )
            return logs

        for log in self.chain.call("anchor log", find):
            try:
                if bytes(log["args"]["root"]) == anchor.root:
                    return "0x" + bytes(log["transactionHash"]).hex()
            except (KeyError, TypeError, ValueError):
                raise ChainError(ChainFault.GARBAGE, f"anchor log {log!r:.200}") from None
        raise ChainError(
            ChainFault.GARBAGE,
            f"no Anchored log of batch {anchor.batch_sequence} in block {anchor.block_number}",
        )

    def anchors(self, account: str) -> list[OnChainAnchor]:
        return [self.anchor_at(account, n) for n in range(self.anchor_count(account))]

    def anchor(self, key: bytes, header: BatchHeader) -> AnchorResult:
        """Anchor ``header``'s root from ``key``'s account, once.

        A batch already on chain with the same root and range is recognised and nothing is
        sent; one on chain with another root is a :attr:`ChainFault.CONFLICT`; a batch whose
        predecessors are not on chain yet is refused before anything is sent.
        """
        sender = address_of(key)
        count = self.anchor_count(sender)
        if header.batch_sequence < count:
            existing = self.anchor_at(sender, header.batch_sequence)
            if self._same(existing, header):
                return AnchorResult(existing, None, None, already_anchored=True)
            raise ChainError(
                ChainFault.CONFLICT,
                f"batch {header.batch_sequence} is on chain with root {existing.root.hex()}",
            )
        if header.batch_sequence > count:
            raise ChainError(
                ChainFault.WRONG_SEQUENCE,
                f"batches {count}..{header.batch_sequence - 1} are not anchored yet",
            )
        function = self.contract.functions.anchor(
            header.batch_sequence,
            header.root_bytes,
            header.previous_root_bytes,
            header.first_sequence,
            header.last_sequence,
        )
        receipt = self.chain.transact("anchor", key, function.build_transaction)
        transaction_hash = receipt["transactionHash"]
        return AnchorResult(
            self.anchor_at(sender, header.batch_sequence),
            "0x" + bytes(transaction_hash).hex(),
            int(receipt["gasUsed"]),
            already_anchored=False,
        )

    @staticmethod
    def _same(anchor: OnChainAnchor, header: BatchHeader) -> bool:
        return (anchor.root, anchor.previous_root, anchor.first_event, anchor.last_event) == (
            header.root_bytes,
            header.previous_root_bytes,
            header.first_sequence,
            header.last_sequence,
        )

    def verify_root(self, account: str, header: BatchHeader) -> OnChainAnchor:
        """The on-chain anchor of ``header``'s batch, if it holds the header's root and range;
        otherwise :attr:`ChainFault.ROOT_MISMATCH` (or ``NO_SUCH_ANCHOR``)."""
        anchor = self.anchor_at(account, header.batch_sequence)
        if not self._same(anchor, header):
            raise ChainError(
                ChainFault.ROOT_MISMATCH,
                f"batch {header.batch_sequence} on chain has root {anchor.root.hex()}, "
                f"events {anchor.first_event}..{anchor.last_event}",
            )
        return anchor
