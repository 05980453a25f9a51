"""What both roles of a transfer process share (DSP 2025-1 Transfer Process Protocol): the ACK
message, and a move of our own, told to the other side, with what the data plane must do about
it in the same transaction.

The data plane gives a started pull transfer its data address (an endpoint and a short-lived
token) and revokes the tokens when the transfer stops; uses are the data plane's accesses under
the agreement, so the count limit holds across transfers. The transfer process asks this of it
through its own port, ``DataPlaneHooks``, and imports no data plane.
"""

from __future__ import annotations

from typing import Any, ClassVar, Final, Protocol

from sqlmodel import Session

from connector.negotiation.machine import Role
from connector.processes import ProcessSteps
from connector.transfer.machine import TERMINAL, Event, State
from connector.transfer.messages import (
    TransferCompletionMessage,
    TransferProcess,
    TransferStartMessage,
    TransferSuspensionMessage,
    TransferTerminationMessage,
)
from connector.transfer.store import TransferProcessRecord
from identity.verifier import Peer

ERROR_TYPE: Final = "TransferError"
FORMATS: Final = frozenset({"HttpData-PULL", "HttpData-PUSH", "PSI-PULL"})
"""``PSI-PULL``: a matching run through the data plane (``connector.dataplane.matchruns``)."""
MAX_REASON_CHARS: Final = 2000
VERB: Final = {
    Event.START: "start",
    Event.SUSPEND: "suspension",
    Event.COMPLETE: "completion",
    Event.TERMINATE: "termination",
}


class DataPlaneHooks(Protocol):
    """What a transfer process needs of a data plane, called inside the transaction of its
    move (the connector's own: ``connector.dataplane.grants``)."""

    def grant(self, session: Session, record: TransferProcessRecord, peer: Peer) -> None:
        """Provider: remember the consumer's credentials as verified with its request."""

    def address(self, session: Session, record: TransferProcessRecord) -> dict[str, Any] | None:
        """Provider, on start: the pull address for the start message (None for push)."""

    def revoke(self, session: Session, record: TransferProcessRecord) -> None:
        """Provider: the transfer no longer runs; its tokens stop working."""

    def consumer_started(self, session: Session, record: TransferProcessRecord) -> None:
        """Consumer: the transfer started; the agreement's duties are tracked."""

    def push_problem(self, address: dict[str, Any], consumer: str) -> str | None:
        """Provider, on a push request: why the consumer's push address cannot be used (it is
        checked again before each push), or None."""


def joined_reasons(reason: list[Any] | None) -> str | None:
    return "\n".join(str(r) for r in reason or [])[:MAX_REASON_CHARS] or None


class TransferSteps(ProcessSteps[TransferProcessRecord]):
    ack_type = TransferProcess
    record_type = TransferProcessRecord
    error_type = ERROR_TYPE
    noun = "transfer process"
    terminal = frozenset(state.value for state in TERMINAL)
    path = "transfers"
    terminate_event = Event.TERMINATE
    taken_over: ClassVar[dict[tuple[str, str], Any]] = {
        (State.COMPLETED.value, State.STARTED.value): Event.COMPLETE,
    }
    dataplane: DataPlaneHooks | None
    """What the data plane does about our moves (None: no data plane)."""
    manual_start: bool
    """Provider: a person starts admitted transfers."""

    def ack(self, record: TransferProcessRecord) -> dict[str, Any]:
        return TransferProcess.build(
            providerPid=self.known_pid(record, "provider_pid"),
            consumerPid=self.known_pid(record, "consumer_pid"),
            state=record.state,
        ).dump()

    def _path(self, record: TransferProcessRecord, event: Event) -> str:
        """Where a message goes: the consumer's callback paths, or the provider's paths."""
        if record.role == Role.PROVIDER.value:
            return f"/transfers/{record.consumer_pid}/{VERB[event]}"
        return f"/transfers/{record.provider_pid}/{VERB[event]}"

    def _send_move(
        self, session: Session, record: TransferProcessRecord, event: Event, **extra: Any
    ) -> None:
        """Move as ourselves and tell the other side."""
        self.move(record, event, Role(record.role))
        record.suspended_by = record.role if event is Event.SUSPEND else None
        self._data_plane_sees(session, record)
        if event is Event.START and record.role == Role.PROVIDER.value and self.dataplane:
            address = self.dataplane.address(session, record)
            if address is not None:
                extra["dataAddress"] = address
        pids = {"providerPid": record.provider_pid, "consumerPid": record.consumer_pid}
        message: dict[str, Any]
        match event:
            case Event.START:
                message = TransferStartMessage.build(**pids, **extra).dump()
            case Event.SUSPEND:
                message = TransferSuspensionMessage.build(**pids, **extra).dump()
            case Event.COMPLETE:
                message = TransferCompletionMessage.build(**pids).dump()
            case _:
                message = TransferTerminationMessage.build(**pids, **extra).dump()
                record.termination_code = extra.get("code")
                record.termination_reason = joined_reasons(extra.get("reason"))
        self.send(session, record, f"transfer.{VERB[event]}", self._path(record, event), message)

    def _data_plane_sees(self, session: Session, record: TransferProcessRecord) -> None:
        """After any move: a provider transfer that is not running loses its tokens; a consumer
        transfer that starts tracks the agreement's duties."""
        if self.dataplane is None:
            return
        if record.role == Role.PROVIDER.value and record.state != State.STARTED.value:
            self.dataplane.revoke(session, record)
        if record.role == Role.CONSUMER.value and record.state == State.STARTED.value:
            self.dataplane.consumer_started(session, record)
