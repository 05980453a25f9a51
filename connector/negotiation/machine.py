"""The DSP 2025-1 contract negotiation state machine, as a table (Contract Negotiation Protocol,
"State Machine"). Pure: no I/O, no clock, no database.

The table has one line per arrow of the specification's diagram; termination is added for every
non-terminal state and both roles, because the text says either party may terminate "at any
point except a terminal state". Decisions such as "may we agree?" belong to policy/, not here:
this module only says which moves are legal.
"""

from __future__ import annotations

from enum import Enum, StrEnum
from typing import Final


class State(StrEnum):
    REQUESTED = "REQUESTED"
    OFFERED = "OFFERED"
    ACCEPTED = "ACCEPTED"
    AGREED = "AGREED"
    VERIFIED = "VERIFIED"
    FINALIZED = "FINALIZED"
    TERMINATED = "TERMINATED"


class Event(Enum):
    REQUEST = "ContractRequestMessage"
    OFFER = "ContractOfferMessage"
    ACCEPT = "ContractNegotiationEventMessage:ACCEPTED"
    AGREE = "ContractAgreementMessage"
    VERIFY = "ContractAgreementVerificationMessage"
    FINALIZE = "ContractNegotiationEventMessage:FINALIZED"
    TERMINATE = "ContractNegotiationTerminationMessage"


class Role(StrEnum):
    CONSUMER = "consumer"
    PROVIDER = "provider"


class ProtocolError(Exception):
    """A move the protocol does not allow; the state is unchanged."""


TERMINAL: Final = frozenset({State.FINALIZED, State.TERMINATED})

TRANSITIONS: Final[dict[tuple[State | None, Event, Role], State]] = {
    (None, Event.REQUEST, Role.CONSUMER): State.REQUESTED,
    (None, Event.OFFER, Role.PROVIDER): State.OFFERED,
    (State.REQUESTED, Event.OFFER, Role.PROVIDER): State.OFFERED,
    (State.REQUESTED, Event.AGREE, Role.PROVIDER): State.AGREED,
    (State.OFFERED, Event.REQUEST, Role.CONSUMER): State.REQUESTED,
    (State.OFFERED, Event.ACCEPT, Role.CONSUMER): State.ACCEPTED,
    (State.ACCEPTED, Event.AGREE, Role.PROVIDER): State.AGREED,
    (State.AGREED, Event.VERIFY, Role.CONSUMER): State.VERIFIED,
    (State.VERIFIED, Event.FINALIZE, Role.PROVIDER): State.FINALIZED,
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
        where = "a new negotiation" if current is None else f"state {current.value}"
        raise ProtocolError(f"the {sender.value} cannot send {event.value} in {where}") from None
