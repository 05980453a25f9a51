"""The data plane between two connectors on loopback: pull with tokens, per-request policy,
ranges, refresh, and the typed refusals."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import Session, select

from connector.contracts.client import ContractsError, DataGrant
from connector.dataplane import tokens
from connector.outbox import OutboxMessage
from connector.participant import standalone
from storage.engine import create_engine
from tests.dsp_schemas import errors
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
from tests.participants import ADMIN_KEY
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
    # refused by the policy itself, or by the monitor that may already have ended the transfer
    assert third.json()["reason"] in ("policy_denied", "transfer_terminated")
    assert any("count lteq 2: violated (actual 3)" in r for r in third.json()["reasons"])

    def accesses() -> list[dict[str, Any]]:
        return [e for e in audit(space) if e["action"] == "data access"]

    wait_for(lambda: len(accesses()) == 3)
    assert sorted(e["outcome"].value for e in accesses()) == ["accepted", "accepted", "refused"]
    assert sorted(e["bytes_sent"] or 0 for e in accesses()) == [0, 10, source.stat().st_size]

    # the monitor ends the transfer whose count is spent, and tells the bank why
    wait_for(lambda: bank_transfer(space, grant.transfer_id)["state"] == "TERMINATED")
    ended = bank_transfer(space, grant.transfer_id)
    assert ended["terminationCode"] == "policy_monitor"
    assert "count lteq 2: violated (actual 3)" in ended["terminationReason"]
    assert fetch(grant).json()["reason"] == "transfer_terminated"
    # asking again reuses the agreement, whose uses are spent: a typed refusal with reasons
    with pytest.raises(ContractsError) as refused:
        grant_for(space, asset)
    assert (refused.value.status, refused.value.code) == (403, "transfer_refused")
    assert any("count lteq 2: violated (actual 3)" in r for r in refused.value.reasons)


def test_a_download_reported_again_is_recorded_once(space: Space, tmp_path: Path) -> None:
    """The SDK reports each download with an id of its own and tries again when the answer
    is lost: a repeat adds no second ``data received`` (the regulator would count the data
    twice); the same id with other figures is a 409, and a report without an id, one more."""
    source, digest = data_file(tmp_path, 70_000)
    asset = offer_data(space, {"type": "file", "path": str(source)}, terms())
    grant = grant_for(space, asset)
    with bank_client(space) as client:
        got = client.download(grant, tmp_path / "got.bin")
        client.report(got)
        client.report(got)

    def received() -> list[dict[str, Any]]:
        return [
            e for e in audit(space, "bank")
            if e["action"] == "data received" and e["subject"] == grant.transfer_id
        ]  # fmt: skip

    [once] = received()
    assert (once["bytes_sent"], once["reason"]) == (70_000, f"complete, sha256 {digest}")
    url, admin = f"{space.bank.base_url}/contracts/v1/received", {"X-Api-Key": ADMIN_KEY}
    other = {"transferId": grant.transfer_id, "bytes": 1, "receiptId": got.receipt_id}
    conflict = httpx.post(url, json=other, headers=admin, timeout=30)
    assert (conflict.status_code, conflict.json()["reason"]) == (409, "receipt_conflict")
    same = {"transferId": grant.transfer_id, "bytes": 70_000, "sha256": digest,
            "receiptId": got.receipt_id}  # fmt: skip
    assert httpx.post(url, json=same, headers=admin, timeout=30).status_code == 201
    assert len(received()) == 1
    unnamed = {"transferId": grant.transfer_id, "bytes": 70_000}
    assert httpx.post(url, json=unnamed, headers=admin, timeout=30).status_code == 201
    assert len(received()) == 2


def _bureau_token(space: Space, grant: DataGrant, **changes: Any) -> str:
    """A token the bureau itself signs, with some of its claims changed."""
    from datetime import UTC, datetime, timedelta

    async def sign() -> str:
        async with standalone(space.bureau) as (participant, _client):
            claims = {
                "transfer_id": grant.transfer_id,
                "agreement_id": grant.agreement_id,
                "consumer": space.bank.participant_id,
                "generation": 1,
                "expires_at": datetime.now(UTC) + timedelta(minutes=5),
                **changes,
            }
            return tokens.issue(
                participant.keyring.current,
                space.bureau.participant_id,
                tokens.AccessToken(**claims),
                datetime.now(UTC),
            )

    return asyncio.run(sign())


def test_bad_tokens_and_ranges_are_refused_typed_and_audited_and_never_counted(
    space: Space, tmp_path: Path
) -> None:
    from datetime import UTC, datetime, timedelta

    source, _ = data_file(tmp_path, 1000)
    asset = offer_data(
        space, {"type": "file", "path": str(source)}, terms(atom("count", "lteq", "1"))
    )
    grant = grant_for(space, asset)
    forged = grant.token[:-4] + ("AAAA" if not grant.token.endswith("AAAA") else "BBBB")
    expired = _bureau_token(space, grant, expires_at=datetime.now(UTC) - timedelta(seconds=1))
    other = _bureau_token(space, grant, transfer_id="urn:uuid:another-transfer")
    stranger = _bureau_token(space, grant, consumer="did:web:stranger.example")

    async def bank_signed() -> str:
        async with standalone(space.bank) as (participant, _client):
            return tokens.issue(
                participant.keyring.current, space.bank.participant_id,
                tokens.AccessToken(grant.transfer_id, grant.agreement_id,
                                   space.bank.participant_id, 1,
                                   datetime.now(UTC) + timedelta(minutes=5)),
                datetime.now(UTC),
            )  # fmt: skip

    foreign = asyncio.run(bank_signed())
    cases = [
        ({}, 401, "missing_token"),
        ({"Authorization": "Bearer not-a-jwt"}, 401, "invalid_token"),
        ({"Authorization": f"Bearer {forged}"}, 401, "invalid_token"),
        ({"Authorization": f"Bearer {expired}"}, 401, "expired_token"),
        ({"Authorization": f"Bearer {other}"}, 401, "invalid_token"),
        ({"Authorization": f"Bearer {stranger}"}, 401, "invalid_token"),
        ({"Authorization": f"Bearer {foreign}"}, 401, "foreign_token"),
        ({"Authorization": f"Bearer {grant.token}", "Range": "bytes=1000-"}, 416,
         "range_not_satisfiable"),
        ({"Authorization": f"Bearer {grant.token}", "Range": "bytes=5-2"}, 400, "invalid_range"),
        ({"Authorization": f"Bearer {grant.token}", "Range": "bytes=0-1,5-6"}, 400,
         "invalid_range"),
    ]  # fmt: skip
    for headers, status, reason in cases:
        answer = httpx.get(grant.endpoint, headers=headers)
        assert (answer.status_code, answer.json()["type"], answer.json()["reason"]) == (
            status, "DataPlaneError", reason,
        ), headers  # fmt: skip
        if status == 401:
            assert answer.headers["www-authenticate"].startswith("Bearer")
    refused = [e for e in audit(space) if e["action"] == "data access"]
    assert len(refused) == len(cases)
    assert all(e["outcome"].value == "refused" for e in refused)
    # none of that was a use: the one allowed download still works
    whole = fetch(grant)
    assert (whole.status_code, whole.content) == (200, source.read_bytes())


def test_a_refreshed_token_replaces_the_old_pair(space: Space, tmp_path: Path) -> None:
    source, _ = data_file(tmp_path, 100)
    asset = offer_data(space, {"type": "file", "path": str(source)}, terms())
    grant = grant_for(space, asset)
    with bank_client(space) as client:
        fresh = client.refresh(grant)
        assert fresh.token != grant.token
        assert fresh.refresh_token != grant.refresh_token
        assert fetch(fresh).status_code == 200
        assert fetch(grant).json()["reason"] == "revoked_token"
        with pytest.raises(ContractsError) as stale:
            client.refresh(grant)
        assert stale.value.code in ("revoked_token", "invalid_refresh_token")
        # a grant about to expire is refreshed before the download
        client.refresh_margin = timedelta(hours=1)
        got = client.download(fresh, tmp_path / "got.bin")
    assert got.grant.token != fresh.token
    assert got.path.read_bytes() == source.read_bytes()


def test_a_revoked_credential_stops_access_and_the_monitor_ends_the_transfer(
    space: Space, tmp_path: Path
) -> None:
    source, _ = data_file(tmp_path, 100)
    asset = offer_data(space, {"type": "file", "path": str(source)}, terms())
    grant = grant_for(space, asset)
    assert fetch(grant).status_code == 200
    admin = {"X-Api-Key": ADMIN_KEY}
    issued = httpx.get(
        f"{space.authority_url}/admin/credentials",
        headers=admin,
        params={"holder": space.bank.participant_id},
    ).json()
    membership = next(c for c in issued if c["type"] == "MembershipCredential")
    revoked = httpx.post(
        f"{space.authority_url}/admin/credentials/{membership['id']}/revoke", headers=admin
    )
    assert revoked.status_code == 200, revoked.text
    wait_for(lambda: fetch(grant).status_code != 200)
    wait_for(lambda: bank_transfer(space, grant.transfer_id)["state"] == "TERMINATED")
    ended = bank_transfer(space, grant.transfer_id)
    assert ended["terminationCode"] == "policy_monitor"
    assert "MembershipCredential" in ended["terminationReason"]
    assert "revoked" in ended["terminationReason"]


def test_an_interrupted_download_is_not_counted_and_resumes(space: Space, tmp_path: Path) -> None:
    # larger than loopback's socket buffers can hold (4 MiB fitted in them now and then: the
    # provider had written it all before the application went away, so nothing was cut off)
    source, digest = data_file(tmp_path, 32 * 1024 * 1024)
    asset = offer_data(
        space, {"type": "file", "path": str(source)}, terms(atom("count", "lteq", "1"))
    )
    grant = grant_for(space, asset)
    target = tmp_path / "got.bin"
    # the application goes away after the first chunk
    with httpx.stream(
        "GET", grant.endpoint, headers={"Authorization": f"Bearer {grant.token}"}
    ) as r:
        first = next(r.iter_raw(256 * 1024))
    target.with_name("got.bin.part").write_bytes(first)
    wait_for(lambda: any(
        e["action"] == "data access" and (e["reason"] or "").startswith("interrupted")
        for e in audit(space)
    ))  # fmt: skip
    with bank_client(space) as client:
        got = client.download(grant, target)
    assert got.resumed_from == len(first)
    assert (got.bytes, got.sha256) == (source.stat().st_size, digest)


def test_every_start_message_the_provider_sends_validates_against_the_dsp_schema(
    space: Space, tmp_path: Path
) -> None:
    source, _ = data_file(tmp_path, 10)
    grant_for(space, offer_data(space, {"type": "file", "path": str(source)}, terms()))
    engine = create_engine(space.bureau.database_url)
    try:
        with Session(engine) as session:
            starts = session.exec(
                select(OutboxMessage).where(OutboxMessage.kind == "transfer.start")
            ).all()
    finally:
        engine.dispose()
    assert starts
    for message in starts:
        body = json.loads(message.body)
        assert errors("transfer/transfer-start-message-schema.json", body) == []
        names = {p["name"] for p in body["dataAddress"]["endpointProperties"]}
        assert {"authorization", "refreshToken", "refreshEndpoint", "expiresAt"} <= names


def _fetch_cli(space: Space, output: Path, dataset: str, purpose: str = PURPOSE) -> subprocess.CompletedProcess[str]:  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "dataspace", "fetch",
         "--connector", space.bank.base_url, "--provider", space.bureau.participant_id,
         "--provider-address", f"{space.bureau.base_url}/dsp", "--dataset", dataset,
         "--purpose", purpose, "--output", str(output)],
        env={**os.environ, "KEXIN_API_KEY": ADMIN_KEY}, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip


def test_dataspace_fetch_downloads_with_progress_and_checksum(space: Space, tmp_path: Path) -> None:
    source, digest = data_file(tmp_path, 2 * 1024 * 1024)
    asset = offer_data(
        space, {"type": "file", "path": str(source)}, terms(atom("purpose", "isA", PURPOSE))
    )
    done = _fetch_cli(space, tmp_path / "out.bin", asset)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[:2] == [digest, str(tmp_path / "out.bin")]
    assert "MB/s" in done.stderr
    assert (tmp_path / "out.bin").read_bytes() == source.read_bytes()
    refused = _fetch_cli(space, tmp_path / "no.bin", asset, purpose="marketing")
    assert refused.returncode == 3
    assert "refused: negotiation_refused" in refused.stderr
    assert "purpose" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert not (tmp_path / "no.bin").exists()


def test_nothing_after_the_time_window_and_the_monitor_ends_the_transfer(
    space: Space, tmp_path: Path
) -> None:
    from datetime import UTC, datetime, timedelta

    source, _ = data_file(tmp_path, 100)
    until = (datetime.now(UTC) + timedelta(seconds=8)).strftime("%Y-%m-%dT%H:%M:%SZ")
    asset = offer_data(
        space, {"type": "file", "path": str(source)}, terms(atom("dateTime", "lteq", until))
    )
    grant = grant_for(space, asset)
    assert fetch(grant).status_code == 200
    wait_for(lambda: bank_transfer(space, grant.transfer_id)["state"] == "TERMINATED")
    ended = bank_transfer(space, grant.transfer_id)
    assert ended["terminationCode"] == "policy_monitor"
    assert f"dateTime lteq {until}" in ended["terminationReason"]
    late = fetch(grant)
    assert (late.status_code, late.json()["reason"]) == (403, "transfer_terminated")
    assert any(f"dateTime lteq {until}" in r for r in late.json()["reasons"])


@pytest.mark.postgres
def test_the_data_plane_on_postgresql(postgres_space: Space, tmp_path: Path) -> None:
    space = postgres_space
    source, digest = data_file(tmp_path, 1024 * 1024)
    asset = offer_data(
        space, {"type": "file", "path": str(source)}, terms(atom("count", "lteq", "1"))
    )
    grant = grant_for(space, asset)
    with bank_client(space) as client:
        assert client.download(grant, tmp_path / "got.bin").sha256 == digest
    refused = fetch(grant)
    assert (refused.status_code, refused.json()["reason"]) in (
        (403, "policy_denied"),
        (403, "transfer_terminated"),  # the monitor may already have ended the spent transfer
    )


def test_concurrent_requests_cannot_both_take_the_last_use(space: Space, tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    source, _ = data_file(tmp_path, 256 * 1024)
    asset = offer_data(
        space, {"type": "file", "path": str(source)}, terms(atom("count", "lteq", "1"))
    )
    grant = grant_for(space, asset)
    with ThreadPoolExecutor(8) as pool:
        statuses = sorted(pool.map(lambda _: fetch(grant).status_code, range(8)))
    assert statuses == [200] + [403] * 7


def test_one_refresh_token_redeemed_at_once_gives_one_working_token(
    space: Space, tmp_path: Path
) -> None:
    """Five refreshes with the same refresh token at the same moment: exactly one answers with
    a new pair (the others are refused), so one refresh token never yields two access tokens."""
    source, _ = data_file(tmp_path, 100)
    asset = offer_data(space, {"type": "file", "path": str(source)}, terms())

    async def refresh_five(grant: Any) -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as client:
            return await asyncio.gather(
                *(
                    client.post(
                        str(grant.refresh_endpoint),
                        headers={"Authorization": f"Bearer {grant.token}"},
                        json={"refreshToken": grant.refresh_token},
                    )
                    for _ in range(5)
                )
            )

    for _ in range(3):
        answers = asyncio.run(refresh_five(grant_for(space, asset)))
        assert sorted(a.status_code for a in answers) == [200, 401, 401, 401, 401], [
            a.text for a in answers
        ]
