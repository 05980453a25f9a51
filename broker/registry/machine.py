"""A registered participant's standing in the data space, as a table of legal moves.

A participant is ``ACTIVE`` once the authority issued it credentials; the operator may suspend
it (its credentials' status entries are set, so that every membership check refuses it) and
reinstate it (the entries of the credentials that were not revoked are cleared again); it is
``REVOKED`` when its last MembershipCredential is revoked, and becomes active again only by a
new onboarding. This module only says which moves are legal: it does no I/O.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class State(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    REVOKED = "revoked"


class Event(StrEnum):
    ONBOARD = "onboard"
    """Credentials were issued to it (first onboarding, more credentials, or anew)."""
    SUSPEND = "suspend"
    REINSTATE = "reinstate"
    REVOKE = "revoke"
    """Its last MembershipCredential was revoked."""


class StandingError(Exception):
    """A move the participant's standing does not allow (the operator's command: 409)."""


TRANSITIONS: Final[dict[tuple[State | None, Event], State]] = {
    (None, Event.ONBOARD): State.ACTIVE,
    (State.ACTIVE, Event.ONBOARD): State.ACTIVE,
    (State.REVOKED, Event.ONBOARD): State.ACTIVE,
    (State.ACTIVE, Event.SUSPEND): State.SUSPENDED,
    (State.SUSPENDED, Event.REINSTATE): State.ACTIVE,
    (State.ACTIVE, Event.REVOKE): State.REVOKED,
    (State.SUSPENDED, Event.REVOKE): State.REVOKED,
    (State.REVOKED, Event.REVOKE): State.REVOKED,
}


def next_state(current: State | None, event: Event) -> State:
    try:
        return TRANSITIONS[current, event]
    except KeyError:
        shown = "unregistered" if current is None else current.value
        raise StandingError(f"a participant that is {shown} cannot {event.value}") from None
