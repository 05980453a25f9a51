from __future__ import annotations

import itertools

import pytest

from connector.negotiation.machine import ProtocolError, Role
from connector.transfer.machine import TERMINAL, TRANSITIONS, Event, State, next_state

C, P = Role.CONSUMER, Role.PROVIDER


def test_everything_not_in_the_table_is_refused() -> None:
    for key in itertools.product([None, *State], Event, Role):
        if key not in TRANSITIONS:
            with pytest.raises(ProtocolError):
                next_state(*key)


def test_request_start_suspend_resume_complete() -> None:
    state = next_state(None, Event.REQUEST, C)
    for event, role, expected in [
        (Event.START, P, State.STARTED),
        (Event.SUSPEND, C, State.SUSPENDED),
        (Event.START, C, State.STARTED),
        (Event.SUSPEND, P, State.SUSPENDED),
        (Event.START, P, State.STARTED),
        (Event.COMPLETE, C, State.COMPLETED),
    ]:
        state = next_state(state, event, role)
        assert state is expected


@pytest.mark.parametrize("state", [s for s in State if s not in TERMINAL])
@pytest.mark.parametrize("role", list(Role))
def test_either_side_may_terminate_in_every_non_terminal_state(state: State, role: Role) -> None:
    assert next_state(state, Event.TERMINATE, role) is State.TERMINATED


@pytest.mark.parametrize("state", sorted(TERMINAL))
def test_terminal_states_refuse_every_message(state: State) -> None:
    for event, role in itertools.product(Event, Role):
        with pytest.raises(ProtocolError):
            next_state(state, event, role)


@pytest.mark.parametrize(
    ("state", "event", "role"),
    [
        pytest.param(State.REQUESTED, Event.START, C, id="consumer-cannot-start-a-new-transfer"),
        pytest.param(State.REQUESTED, Event.COMPLETE, P, id="no-completion-before-start"),
        pytest.param(State.SUSPENDED, Event.COMPLETE, C, id="no-completion-while-suspended"),
        pytest.param(State.REQUESTED, Event.SUSPEND, C, id="no-suspension-before-start"),
        pytest.param(None, Event.REQUEST, P, id="provider-cannot-request"),
    ],
)
def test_illegal_moves(state: State | None, event: Event, role: Role) -> None:
    with pytest.raises(ProtocolError):
        next_state(state, event, role)
