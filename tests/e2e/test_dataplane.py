"""The data plane between two connectors on loopback: pull with tokens, per-request policy,
ranges, refresh, and the typed refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.contracts.client import ContractsError
from tests.e2e.dataplane_helpers import (
    PURPOSE,
    audit,
    bank_client,
    data_file,
    fetch,
    grant_for,
    offer_data,
    terms,
)
from tests.e2e.space import Space
from tests.e2e.test_negotiation import wait_for
from tests.e2e.test_transfer import bank_transfer
from tests.policy.policies import atom


def test_pull_streams_the_data_and_the_third_use_is_refused(space: Space, tmp_path: Path) -> None:
    source, digest = data_file(tmp_path, 3 * 1024 * 1024 + 17)
    asset = offer_data(
        space, {"type": "file", "path": str(source)},
        terms(atom("purpose", "isA", PURPOSE), atom("count", "lteq", "2")),
    )  # fmt: skip
    grant = grant_for(space, asset)
    assert grant.endpoint == f"{space.bureau.base_url}/dataplane/v1/data"
    with bank_client(space) as client:
        got = client.download(grant, tmp_path / "got.bin")
    assert (got.bytes, got.sha256) == (source.stat().st_size, digest)

    part = fetch(grant, Range="bytes=10-19")
    assert part.status_code == 206
    assert part.content == source.read_bytes()[10:20]
    assert part.headers["content-range"] == f"bytes 10-19/{source.stat().st_size}"

    third = fetch(grant)
    assert third.status_code == 403
    assert third.json()["reason"] == "policy_denied"
    assert any("count lteq 2: violated (actual 3)" in r for r in third.json()["reasons"])

    events = [e for e in audit(space) if e["action"] == "data access"]
    assert [e["outcome"].value for e in events][:3] == ["refused", "accepted", "accepted"]
    assert events[2]["bytes_sent"] == source.stat().st_size
    assert events[1]["bytes_sent"] == 10

    # the monitor ends the transfer whose count is spent, and tells the bank why
    wait_for(lambda: bank_transfer(space, grant.transfer_id)["state"] == "TERMINATED")
    ended = bank_transfer(space, grant.transfer_id)
    assert ended["terminationCode"] == "policy_monitor"
    assert "count lteq 2: violated (actual 3)" in ended["terminationReason"]
    assert fetch(grant).json()["reason"] == "revoked_token"
    # asking again reuses the agreement, whose uses are spent: a typed refusal with reasons
    with pytest.raises(ContractsError) as refused:
        grant_for(space, asset)
    assert (refused.value.status, refused.value.code) == (403, "transfer_refused")
    assert any("count lteq 2: violated (actual 3)" in r for r in refused.value.reasons)
