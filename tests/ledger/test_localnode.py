"""The embedded chain's process adapter: a missing or failing anvil is a clear error, never a
hang; a running one answers and is gone after the stop."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from ledger import localnode
from tests.ledger import nodetools
from tests.loopback import free_port


def test_a_missing_anvil_is_named() -> None:
    with pytest.raises(localnode.LocalNodeError, match="anvil not found at /nowhere/anvil"):
        localnode.find_anvil(Path("/nowhere/anvil"))


def test_an_anvil_that_exits_at_once_says_what_it_printed(tmp_path: Path) -> None:
    fake = tmp_path / "anvil"
    fake.write_text("#!/bin/sh\necho 'error: unexpected argument' >&2\nexit 2\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    with (
        pytest.raises(localnode.LocalNodeError, match="exited with 2: error: unexpected argument"),
        localnode.local_node(free_port(), anvil=fake),
    ):
        pass


def test_a_node_answers_while_it_runs_and_writes_its_state_when_stopped(tmp_path: Path) -> None:
    binary = nodetools.require(nodetools.ANVIL, "anvil")
    state = tmp_path / "state.json"
    with localnode.local_node(free_port(), state, anvil=binary) as url:
        assert localnode.answers(url)
    assert not localnode.answers(url)
    assert state.stat().st_size > 0
