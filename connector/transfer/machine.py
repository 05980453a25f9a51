"""The DSP 2025-1 transfer process state machine, as a table (Transfer Process Protocol,
"State Machine", and the HTTPS binding's endpoints). Pure: no I/O, no clock, no database.

Either party may suspend, complete or terminate; termination is allowed in every non-terminal
state ("at any point except a terminal state"). A suspended transfer is started again by the
provider, or by the consumer (the binding's provider ``/start`` endpoint "to attempt to start a
TP after it has been suspended"). A provider may repeat a start while STARTED: that is how it
answers a repeated request for the same ``consumerPid`` and how it hands out a fresh data
address.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from connector.negotiation.machine import ProtocolError, Role


class State(StrEnum):
    REQUESTED = "REQUESTED"
    STARTED = "STARTED"
    SUSPENDED = "SUSPENDED"
    COMPLETED = "COMPLETED"
    TERMINATED = "TERMINATED"


class Event(StrEnum):
    REQUEST = "TransferRequestMessage"
    START = "TransferStartMessage"
    SUSPEND = "TransferSuspensionMessage"
    COMPLETE = "TransferCompletionMessage"
    TERMINATE = "TransferTerminationMessage"


TERMINAL: Final = frozenset({State.COMPLETED, State.TERMINATED})

TRANSITIONS: Final[dict[tuple[State | None, Event, Role], State]] = {
    (None, Event.REQUEST, Role.CONSUMER): State.REQUESTED,
    (State.REQUESTED, Event.START, Role.PROVIDER): State.STARTED,
    (State.STARTED, Event.START, Role.PROVIDER): State.STARTED,
    (State.SUSPENDED, Event.START, Role.PROVIDER): State.STARTED,
    (State.SUSPENDED, Event.START, Role.CONSUMER): State.STARTED,
    (State.STARTED, Event.SUSPEND, Role.PROVIDER): State.SUSPENDED,
    (State.STARTED, Event.SUSPEND, Role.CONSUMER): State.SUSPENDED,
    (State.STARTED, Event.COMPLETE, Role.PROVIDER): State.COMPLETED,
    (State.STARTED, Event.COMPLETE, Role.CONSUMER): State.COMPLETED,
    **{
        (state, Event.TERMINATE, role): State.TERMINATED
        for state in State
        if state not in TERMINAL
        for role in Role
    },
}


def next_state(current: State | None, event: Event, sender: Role) -> State:
    try:
        return TRANSITIONS[current, event, sender]
    except KeyError:
        where = "a new transfer" if current is None else f"state {current.value}"
        raise ProtocolError(f"the {sender.value} cannot send {event.value} in {where}") from None
