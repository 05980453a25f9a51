from __future__ import annotations

import itertools

import pytest

from connector.negotiation.machine import (
    TERMINAL,
    TRANSITIONS,
    Event,
    ProtocolError,
    Role,
    State,
    next_state,
)

C, P = Role.CONSUMER, Role.PROVIDER


def test_everything_not_in_the_table_is_refused() -> None:
    for key in itertools.product([None, *State], Event, Role):
        if key not in TRANSITIONS:
            with pytest.raises(ProtocolError):
                next_state(*key)


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(
            [
                (Event.REQUEST, C, State.REQUESTED),
                (Event.AGREE, P, State.AGREED),
                (Event.VERIFY, C, State.VERIFIED),
                (Event.FINALIZE, P, State.FINALIZED),
            ],
            id="consumer-initiated",
        ),
        pytest.param(
            [
                (Event.OFFER, P, State.OFFERED),
                (Event.ACCEPT, C, State.ACCEPTED),
                (Event.AGREE, P, State.AGREED),
            ],
            id="provider-initiated",
        ),
        pytest.param(
            [
                (Event.REQUEST, C, State.REQUESTED),
                (Event.OFFER, P, State.OFFERED),
                (Event.REQUEST, C, State.REQUESTED),
                (Event.OFFER, P, State.OFFERED),
                (Event.ACCEPT, C, State.ACCEPTED),
            ],
            id="counter-offers",
        ),
    ],
)
def test_the_paths_of_the_diagram(path: list[tuple[Event, Role, State]]) -> None:
    state: State | None = None
    for event, role, expected in path:
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
        pytest.param(State.AGREED, Event.VERIFY, P, id="provider-cannot-verify"),
        pytest.param(State.VERIFIED, Event.FINALIZE, C, id="consumer-cannot-finalize"),
        pytest.param(State.OFFERED, Event.ACCEPT, P, id="provider-cannot-accept"),
        pytest.param(State.REQUESTED, Event.AGREE, C, id="consumer-cannot-agree"),
        pytest.param(State.ACCEPTED, Event.VERIFY, C, id="no-verify-before-agreement"),
        pytest.param(None, Event.AGREE, P, id="no-agreement-out-of-nowhere"),
    ],
)
def test_messages_for_the_wrong_role_or_moment(
    state: State | None, event: Event, role: Role
) -> None:
    with pytest.raises(ProtocolError, match=f"the {role.value} cannot send"):
        next_state(state, event, role)
