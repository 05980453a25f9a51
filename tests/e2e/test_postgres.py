"""The protocol stores on a real PostgreSQL server: the whole exchange with both connectors on
PostgreSQL databases (the rest of the multi-party tests run on SQLite files)."""

from __future__ import annotations

import pytest

from tests.e2e.space import Space
from tests.e2e.test_negotiation import negotiate, provider_side, ready, state_of, wait_for
from tests.e2e.test_transfer import complete_and_terminate_at_once, in_state, transfer


@pytest.mark.postgres
def test_negotiation_and_transfer_on_postgres(postgres_space: Space) -> None:
    space = postgres_space
    assert space.bank.database_url.startswith("postgresql+psycopg://")
    negotiation = negotiate(space, ready(space))
    wait_for(lambda: state_of(space.bank.base_url, negotiation["id"])["state"] == "FINALIZED")
    assert provider_side(space)["state"] == "FINALIZED"
    view = transfer(space, state_of(space.bank.base_url, negotiation["id"])["agreementId"])
    in_state(space, view["id"], "STARTED")


@pytest.mark.postgres
def test_two_moves_at_once_on_postgres(postgres_space: Space) -> None:
    """The row lock that serializes two moves of one process, on PostgreSQL."""
    complete_and_terminate_at_once(postgres_space)
