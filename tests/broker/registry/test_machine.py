from __future__ import annotations

import itertools

import pytest

from broker.registry.machine import TRANSITIONS, Event, StandingError, State, next_state


def test_everything_not_in_the_table_is_refused() -> None:
    for key in itertools.product([None, *State], Event):
        if key not in TRANSITIONS:
            with pytest.raises(StandingError):
                next_state(*key)


@pytest.mark.parametrize(
    ("current", "event", "after"),
    [
        pytest.param(None, Event.ONBOARD, State.ACTIVE, id="onboarded"),
        pytest.param(State.ACTIVE, Event.SUSPEND, State.SUSPENDED, id="suspended"),
        pytest.param(State.SUSPENDED, Event.REINSTATE, State.ACTIVE, id="reinstated"),
        pytest.param(State.SUSPENDED, Event.REVOKE, State.REVOKED, id="revoked-while-suspended"),
        pytest.param(State.REVOKED, Event.ONBOARD, State.ACTIVE, id="onboarded-anew"),
    ],
)
def test_the_moves(current: State | None, event: Event, after: State) -> None:
    assert next_state(current, event) is after


@pytest.mark.parametrize(
    ("current", "event"),
    [
        pytest.param(State.SUSPENDED, Event.ONBOARD, id="no-credentials-while-suspended"),
        pytest.param(State.REVOKED, Event.REINSTATE, id="revoked-is-not-reinstated"),
        pytest.param(State.SUSPENDED, Event.SUSPEND, id="not-twice"),
        pytest.param(None, Event.SUSPEND, id="unregistered"),
    ],
)
def test_the_refusals(current: State | None, event: Event) -> None:
    with pytest.raises(StandingError):
        next_state(current, event)
