"""The kit's own side of each process (the Eclipse DSP TCK's ``ContractNegotiation``,
``TransferProcess`` and the negotiation and transfer managers of its ``TckConnector``): what it
records about a negotiation or transfer it plays, which state changes it allows itself, and
what it does with each message the connector under test sends. A message the kit's state
machine refuses raises KitStateError (the kit answers it 400); a message without a property
the kit reads raises ScenarioError (a defect of the sender).

Only what the kit does: no policy, no persistence. One KitConnector per scenario and role.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from tests.conformance import messages
from tests.conformance.checks import ScenarioError, required, show
from tests.conformance.messages import Message


class KitStateError(Exception):
    """The kit's state machine refuses a move (it answers such a message with 400)."""


class Role(StrEnum):
    CONSUMER = "consumer"
    PROVIDER = "provider"


class NegotiationState(StrEnum):
    INITIALIZED = "INITIALIZED"
    REQUESTED = "REQUESTED"
    OFFERED = "OFFERED"
    ACCEPTED = "ACCEPTED"
    AGREED = "AGREED"
    VERIFIED = "VERIFIED"
    FINALIZED = "FINALIZED"
    TERMINATED = "TERMINATED"


class TransferState(StrEnum):
    INITIALIZED = "INITIALIZED"
    REQUESTED = "REQUESTED"
    STARTED = "STARTED"
    COMPLETED = "COMPLETED"
    SUSPENDED = "SUSPENDED"
    TERMINATED = "TERMINATED"


N = NegotiationState
T = TransferState

NEGOTIATION_MOVES: Final[dict[NegotiationState, frozenset[NegotiationState]]] = {
    N.INITIALIZED: frozenset({N.REQUESTED, N.OFFERED, N.TERMINATED}),
    N.REQUESTED: frozenset({N.OFFERED, N.AGREED, N.TERMINATED}),
    N.OFFERED: frozenset({N.REQUESTED, N.OFFERED, N.ACCEPTED, N.TERMINATED}),
    N.ACCEPTED: frozenset({N.AGREED, N.TERMINATED}),
    N.AGREED: frozenset({N.VERIFIED, N.TERMINATED}),
    N.VERIFIED: frozenset({N.FINALIZED, N.TERMINATED}),
}
"""The kit's table; FINALIZED and TERMINATED are final."""

TRANSFER_MOVES: Final[dict[TransferState, frozenset[TransferState]]] = {
    T.INITIALIZED: frozenset({T.REQUESTED}),
    T.REQUESTED: frozenset({T.STARTED, T.TERMINATED}),
    T.SUSPENDED: frozenset({T.STARTED, T.TERMINATED}),
    T.STARTED: frozenset({T.SUSPENDED, T.TERMINATED, T.COMPLETED}),
}
"""The kit's table; COMPLETED and TERMINATED are final."""

NEEDS_CORRELATION: Final = frozenset({N.REQUESTED, N.OFFERED, T.REQUESTED, T.STARTED})
"""States the kit refuses to enter before it knows the other side's process id."""


def _new_id() -> str:
    return str(uuid.uuid4())


def _moved(
    current: Any, new: Any, moves: dict[Any, frozenset[Any]], correlation_id: str | None
) -> Any:
    allowed = moves.get(current)
    if allowed is None:
        raise KitStateError(f"{current} is a final state")
    if new not in allowed:
        legal = ", ".join(sorted(allowed))
        raise KitStateError(
            f"Illegal state transition from {current} to {new}. To state must be one of {legal}."
        )
    if new in NEEDS_CORRELATION and correlation_id is None:
        raise KitStateError("Correlation id not set")
    return new


@dataclass(eq=False)
class KitNegotiation:
    role: Role
    callback_address: str
    offer_id: str
    dataset_id: str
    counterparty_id: str | None = None
    correlation_id: str | None = None
    state: NegotiationState = N.INITIALIZED
    id: str = field(default_factory=_new_id)
    offers: list[Message] = field(default_factory=list)
    agreement: Message | None = None
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    def transition(self, new: NegotiationState) -> None:
        with self._lock:
            self.state = _moved(self.state, new, NEGOTIATION_MOVES, self.correlation_id)

    def correlate(self, correlation_id: str, state: NegotiationState) -> None:
        with self._lock:
            self.correlation_id = correlation_id
            self.transition(state)

    def store_offer(self, offer: Message, state: NegotiationState) -> None:
        with self._lock:
            self.offers.append(offer)
            self.transition(state)

    def store_agreement(self, agreement: Message) -> None:
        with self._lock:
            self.agreement = agreement
            self.transition(N.AGREED)

    @property
    def provider_pid(self) -> str | None:
        return self.id if self.role is Role.PROVIDER else self.correlation_id

    @property
    def consumer_pid(self) -> str | None:
        return self.id if self.role is Role.CONSUMER else self.correlation_id


@dataclass(eq=False)
class KitTransfer:
    role: Role
    callback_address: str
    agreement_id: str | None = None
    format: str | None = None
    correlation_id: str | None = None
    state: TransferState = T.INITIALIZED
    id: str = field(default_factory=_new_id)
    data_address: dict[str, Any] | None = None
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    def transition(self, new: TransferState) -> None:
        with self._lock:
            self.state = _moved(self.state, new, TRANSFER_MOVES, self.correlation_id)

    def correlate(self, correlation_id: str) -> None:
        with self._lock:
            self.correlation_id = correlation_id
            self.transition(T.REQUESTED)

    def store_start(self, data_address: dict[str, Any] | None) -> None:
        with self._lock:
            self.data_address = data_address
            self.transition(T.STARTED)

    @property
    def provider_pid(self) -> str | None:
        return self.id if self.role is Role.PROVIDER else self.correlation_id

    @property
    def consumer_pid(self) -> str | None:
        return self.id if self.role is Role.CONSUMER else self.correlation_id


def _data_address(start: Message) -> dict[str, Any] | None:
    """What the kit reads of a TransferStartMessage's DataAddress (``toDataAddress``)."""
    address = start.get("dataAddress")
    if address is None:
        return None
    if not isinstance(address, dict):
        raise ScenarioError(f"Property 'dataAddress' is not a Map\nbody: {show(start)}")
    properties = {}
    for item in address.get("endpointProperties") or []:
        if isinstance(item, dict):
            properties[str(required(item, "name"))] = str(required(item, "value"))
    return {
        "endpointType": required(address, "endpointType"),
        "endpoint": required(address, "endpoint"),
        "endpointProperties": properties,
    }


class KitConnector:
    """The kit's connector in one role, for one scenario: its negotiations and transfers by
    its own process id, and the hooks its pipelines listen on."""

    def __init__(self, role: Role) -> None:
        self.role = role
        self.own_key = "consumerPid" if role is Role.CONSUMER else "providerPid"
        self.negotiations: dict[str, KitNegotiation] = {}
        self.transfers: dict[str, KitTransfer] = {}
        self.on_negotiation_requested: Callable[[KitNegotiation], None] | None = None
        self.on_transfer_requested: Callable[[KitTransfer], None] | None = None

    def negotiation(self, pid: object) -> KitNegotiation:
        found = self.negotiations.get(str(pid))
        if found is None:
            raise KitStateError(f"Contract negotiation not found for id: {pid}")
        return found

    def transfer(self, pid: object) -> KitTransfer:
        found = self.transfers.get(str(pid))
        if found is None:
            raise KitStateError(f"Transfer process not found for id: {pid}")
        return found

    # -- negotiations, the kit as consumer (ConsumerNegotiationManagerImpl)

    def create_negotiation(
        self, dataset_id: str, offer_id: str, provider_url: str
    ) -> KitNegotiation:
        negotiation = KitNegotiation(Role.CONSUMER, provider_url.rstrip("/"), offer_id, dataset_id)
        self.negotiations[negotiation.id] = negotiation
        return negotiation

    def handle_offer(self, offer: Message) -> Message:
        required(offer, "providerPid")
        negotiation = self.negotiation(required(offer, "consumerPid"))
        negotiation.store_offer(offer, N.OFFERED)
        return messages.negotiation(
            str(negotiation.correlation_id), negotiation.id, N.OFFERED.value
        )

    def handle_agreement(self, agreement: Message) -> None:
        required(agreement, "providerPid")
        negotiation = self.negotiation(required(agreement, "consumerPid"))
        negotiation.store_agreement(agreement)

    def handle_finalized(self, event: Message) -> None:
        required(event, "providerPid")
        self.negotiation(required(event, "consumerPid")).transition(N.FINALIZED)

    def handle_negotiation_termination(self, termination: Message) -> Message:
        negotiation = self.negotiation(required(termination, self.own_key))
        negotiation.transition(N.TERMINATED)
        return messages.negotiation(
            str(negotiation.provider_pid), negotiation.consumer_pid, N.TERMINATED.value
        )

    # -- negotiations, the kit as provider (ProviderNegotiationManagerImpl)

    def handle_contract_request(self, request: Message, counterparty_id: str) -> Message:
        if "providerPid" in request:
            negotiation = self.negotiation(request["providerPid"])
            negotiation.store_offer(required(request, "offer"), N.REQUESTED)
        else:
            negotiation = self._initial_request(request, counterparty_id)
        return messages.negotiation(
            negotiation.id, negotiation.correlation_id, negotiation.state.value
        )

    def _initial_request(self, request: Message, counterparty_id: str) -> KitNegotiation:
        consumer_pid = str(required(request, "consumerPid"))
        previous = next(
            (n for n in self.negotiations.values() if n.correlation_id == consumer_pid), None
        )
        if previous is not None:
            return previous
        offer = required(request, "offer")
        if not isinstance(offer, dict):
            raise ScenarioError(f"Property 'offer' is not a Map\nbody: {show(request)}")
        offer_id = str(required(offer, "@id"))
        try:
            dataset_id = messages.dataset_id_of(offer_id)
        except ValueError as error:
            raise KitStateError(str(error)) from None
        negotiation = KitNegotiation(
            Role.PROVIDER,
            str(required(request, "callbackAddress")).rstrip("/"),
            offer_id,
            dataset_id,
            counterparty_id=counterparty_id,
            correlation_id=consumer_pid,
            state=N.REQUESTED,
        )
        self.negotiations[negotiation.id] = negotiation
        if self.on_negotiation_requested is not None:
            self.on_negotiation_requested(negotiation)
        return negotiation

    def handle_accepted(self, event: Message) -> None:
        required(event, "eventType")
        self.negotiation(required(event, "providerPid")).transition(N.ACCEPTED)

    def handle_verified(self, verification: Message) -> None:
        self.negotiation(required(verification, "providerPid")).transition(N.VERIFIED)

    # -- transfers, the kit as consumer (ConsumerTransferProcessManagerImpl)

    def create_transfer(self, agreement_id: str, format_: str, provider_url: str) -> KitTransfer:
        transfer = KitTransfer(Role.CONSUMER, provider_url, agreement_id, format_)
        self.transfers[transfer.id] = transfer
        return transfer

    def transfer_requested(self, transfer_id: str, provider_pid: str) -> None:
        self.transfer(transfer_id).correlate(provider_pid)

    # -- transfers, the kit as provider (ProviderTransferProcessManagerImpl)

    def handle_transfer_request(self, request: Message) -> Message:
        consumer_pid = str(required(request, "consumerPid"))
        previous = next(
            (t for t in self.transfers.values() if t.correlation_id == consumer_pid), None
        )
        if previous is not None:
            return messages.transfer(previous.id, previous.correlation_id, previous.state.value)
        transfer = KitTransfer(
            Role.PROVIDER,
            str(required(request, "callbackAddress")),
            correlation_id=consumer_pid,
            state=T.REQUESTED,
        )
        self.transfers[transfer.id] = transfer
        if self.on_transfer_requested is not None:
            self.on_transfer_requested(transfer)
        return messages.transfer(transfer.id, transfer.correlation_id, transfer.state.value)

    # -- transfers, either role (AbstractTransferProcessManager)

    def _moved_transfer(self, message: Message, state: TransferState) -> Message:
        required(message, "providerPid")
        required(message, "consumerPid")
        transfer = self.transfer(message[self.own_key])
        transfer.transition(state)
        return messages.transfer(str(transfer.provider_pid), transfer.consumer_pid, state.value)

    def handle_start(self, start: Message) -> Message:
        required(start, "providerPid")
        address = _data_address(start)
        transfer = self.transfer(required(start, self.own_key))
        transfer.store_start(address)
        return messages.transfer(str(transfer.provider_pid), transfer.consumer_pid, T.STARTED.value)

    def handle_completion(self, completion: Message) -> Message:
        return self._moved_transfer(completion, T.COMPLETED)

    def handle_suspension(self, suspension: Message) -> Message:
        return self._moved_transfer(suspension, T.SUSPENDED)

    def handle_transfer_termination(self, termination: Message) -> Message:
        return self._moved_transfer(termination, T.TERMINATED)
