"""EDRs: the bank's connector lists the pull transfers it started as the consumer (without
tokens) and answers one's endpoint and a token that works, refreshed on read when the old one
has expired (the old pair then stops working); concurrent reads share one refresh; an unknown,
a provider-side or an ended transfer is not an EDR; ``dataspace transfers edr`` shows it."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from connector.management.client import ManagementClient
from dataspace.cli import app
from service.client import ApiError
from tests.e2e.dataplane_helpers import KEY, data_file, fetch, grant_for, offer_data, terms
from tests.e2e.space import Space, start_space
from tests.participants import ADMIN_KEY

TOKEN_TTL_S = 2.0


@pytest.fixture
def short_tokens(tmp_path: Path) -> Iterator[Space]:
    """The bureau's tokens live two seconds; the bank refreshes those within half a second."""
    with start_space(
        tmp_path, allow_list=True, bureau_extra={"token_ttl_s": TOKEN_TTL_S},
        bank_extra={"edr_refresh_margin_s": 0.5},
    ) as started:  # fmt: skip
        yield started


def bearer(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_started_pull_transfer_is_an_edr_refreshed_on_read(
    short_tokens: Space, tmp_path: Path
) -> None:
    space = short_tokens
    source, _ = data_file(tmp_path, 100)
    asset = offer_data(space, {"type": "file", "path": str(source)}, terms())
    grant = grant_for(space, asset)
    with ManagementClient(space.bank.base_url, ADMIN_KEY) as bank:
        listed = bank.edrs()
        [entry] = [e for e in listed.items if e.transfer_id == grant.transfer_id]
        assert entry.endpoint == grant.endpoint
        assert entry.agreement_id == grant.agreement_id
        assert entry.counter_party_id == space.bureau.participant_id
        assert "authorization" not in entry.model_dump(by_alias=True)
        current = bank.edr(grant.transfer_id)  # valid for another 1.5 s and more: as it is
        assert not current.refreshed
        assert current.authorization == grant.token
        time.sleep(TOKEN_TTL_S + 0.2)
        assert fetch(grant).json()["reason"] == "expired_token"
        edr = bank.edr(grant.transfer_id)
        assert edr.refreshed
        assert edr.authorization not in (None, grant.token)
        assert edr.endpoint == grant.endpoint
        got = httpx.get(edr.endpoint or "", headers=bearer(edr.authorization), timeout=30)
        assert got.status_code == 200, got.text
        assert got.content == source.read_bytes()
        assert edr.expires_at != entry.expires_at
        # the refreshed pair is the one kept: once it expires, the next read refreshes with it
        time.sleep(TOKEN_TTL_S + 0.2)
        again = bank.edr(grant.transfer_id)
        assert again.refreshed
        assert again.authorization != edr.authorization
        works = httpx.get(again.endpoint or "", headers=bearer(again.authorization), timeout=30)
        assert works.status_code == 200, works.text
    raw = httpx.get(f"{space.bank.base_url}/management/v1/edrs/{grant.transfer_id}", headers=KEY)
    assert raw.headers["cache-control"] == "no-store"


def test_concurrent_reads_share_the_refresh(short_tokens: Space, tmp_path: Path) -> None:
    space = short_tokens
    source, _ = data_file(tmp_path, 100)
    grant = grant_for(space, offer_data(space, {"type": "file", "path": str(source)}, terms()))
    time.sleep(TOKEN_TTL_S + 0.2)
    url = f"{space.bank.base_url}/management/v1/edrs/{grant.transfer_id}"

    async def five() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30, headers=KEY) as client:
            return await asyncio.gather(*(client.get(url) for _ in range(5)))

    answers = asyncio.run(five())
    assert [a.status_code for a in answers] == [200] * 5, [a.text for a in answers]
    assert [a.json()["refreshed"] for a in answers].count(True) == 1
    assert len({a.json()["authorization"] for a in answers}) == 1
    last = answers[-1].json()
    got = httpx.get(last["endpoint"], headers=bearer(last["authorization"]), timeout=30)
    assert got.status_code == 200


def test_what_is_not_an_edr_is_not_found(space: Space, tmp_path: Path) -> None:
    source, _ = data_file(tmp_path, 100)
    grant = grant_for(space, offer_data(space, {"type": "file", "path": str(source)}, terms()))
    with ManagementClient(space.bureau.base_url, ADMIN_KEY) as bureau:
        provider_side = bureau.transfers(role="provider").items[0].id
        with pytest.raises(ApiError) as not_ours:
            bureau.edr(provider_side)
        assert not_ours.value.status == 404
        assert bureau.edrs().items == []
    with ManagementClient(space.bank.base_url, ADMIN_KEY) as bank:
        with pytest.raises(ApiError) as unknown:
            bank.edr("urn:uuid:no-such-transfer")
        assert (unknown.value.status, unknown.value.reason) == (404, "not_found")
        bank.move_transfer(grant.transfer_id, "complete")
        with pytest.raises(ApiError) as ended:
            bank.edr(grant.transfer_id)
        assert ended.value.status == 404
        assert grant.transfer_id not in {e.transfer_id for e in bank.edrs().items}
        with pytest.raises(ApiError) as sort:
            bank.edrs(sort="state")
        assert (sort.value.status, sort.value.reason) == (400, "unknown_sort")


def test_the_cli_shows_an_edr(
    space: Space, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, _ = data_file(tmp_path, 100)
    grant = grant_for(space, offer_data(space, {"type": "file", "path": str(source)}, terms()))
    monkeypatch.setenv("CONNECTOR_PUBLIC_URL", space.bank.base_url)
    monkeypatch.setenv("CONNECTOR_MANAGEMENT_API_KEY", ADMIN_KEY)
    runner = CliRunner()
    shown = runner.invoke(app, ["transfers", "edr", grant.transfer_id, "--output", "json"])
    assert shown.exit_code == 0, shown.output
    edr = json.loads(shown.stdout)
    got = httpx.get(edr["endpoint"], headers=bearer(edr["authorization"]), timeout=30)
    assert got.status_code == 200
    table = runner.invoke(app, ["transfers", "edrs"])
    assert table.exit_code == 0, table.output
    assert grant.transfer_id in table.output
    missing = runner.invoke(app, ["transfers", "edr", "urn:uuid:none"])
    assert missing.exit_code == 1
    assert len(missing.output.strip().splitlines()) == 1
    assert "Traceback" not in missing.output
