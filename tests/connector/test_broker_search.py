"""A consumer searches through the broker, on real loopback servers: the bank's connector asks
the broker's federated catalogue (DCP-authenticated as the bank) through its management API,
the SDK and ``dataspace search``, and the hit's provider, DSP address and dataset id go as they
are to ``dataspace fetch``, which gets the bureau's firm list from the bureau itself."""

from __future__ import annotations

import asyncio
import shlex
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from broker.app import create_app as create_broker
from connector.app import create_app as create_connector
from connector.management.client import ManagementClient
from dataspace.cli import app as cli
from dataspace.servers import bind, serve_in_thread
from identity.credentials import CredentialType
from service.client import ApiError
from tests.broker.search.test_federation import BROKER_ORG, KEY, MEMBERS
from tests.e2e.space import onboard
from tests.participants import (
    ADMIN_KEY,
    BANK_ORG,
    BUREAU_ORG,
    authority_settings,
    connector_settings,
    did_for,
)

FIRMS = "urn:kexin:asset:firm-list"
ROWS = "credit_code,name\n91440101MA59XKQ72B,广州某某科技有限公司\n"


def eventually(check: Callable[[], bool], within_s: float = 15.0) -> None:
    deadline = time.monotonic() + within_s
    while not check():
        assert time.monotonic() < deadline, "not within the time"
        time.sleep(0.1)


def publish(base: str, folder: Path) -> None:
    api = base + "/management/v1"
    source = folder / "firms.csv"
    source.write_text(ROWS, encoding="utf-8")
    for name, title_zh, title_en, domain, address in (
        ("firm-list", "广州市企业名单", "Guangzhou firm list", "economic-development", source),
        ("air", "空气质量监测数据", "Air quality", "ecological-environment", source),
        ("loans", "企业贷款名单", "Firm loan list", "industry-city", source),
    ):
        created = httpx.post(
            f"{api}/assets", headers=KEY,
            json={
                "id": f"urn:kexin:asset:{name}", "titleZh": title_zh, "titleEn": title_en,
                "dataGrade": "general", "region": "440106", "domain": domain,
                "dataAddress": {"type": "file", "path": str(address)},
            },
        )  # fmt: skip
        assert created.status_code == 201, created.text
    answer = httpx.post(
        f"{api}/policydefinitions", headers=KEY, json={"id": "members", "policy": MEMBERS}
    )
    assert answer.status_code == 201, answer.text
    answer = httpx.post(
        f"{api}/contractdefinitions", headers=KEY,
        json={"id": "cd", "accessPolicyId": "members", "contractPolicyId": "members",
              "assetSelector": {}},
    )  # fmt: skip
    assert answer.status_code == 201, answer.text


def test_the_bank_finds_the_firm_list_through_the_broker_and_fetches_it(tmp_path: Path) -> None:
    broker_sock, bureau_sock, bank_sock = bind(), bind(), bind()
    authority = did_for(broker_sock, "authority")
    broker_url = f"http://127.0.0.1:{broker_sock.getsockname()[1]}"
    via_broker = {"broker_url": broker_url, "broker_id": authority}
    bureau = connector_settings(bureau_sock, tmp_path, "bureau", authority, ttl_s=0.3)
    bureau = bureau.model_copy(update=via_broker)
    bank = connector_settings(bank_sock, tmp_path, "bank", authority, ttl_s=0.3)
    bank = bank.model_copy(update=via_broker)
    allow = {
        bureau.participant_id: {"types": ["MembershipCredential", "PublicDataHolderCredential"], "organisation": BUREAU_ORG},
        bank.participant_id: {"types": ["MembershipCredential", "FinancialInstitutionCredential"], "organisation": BANK_ORG},
    }  # fmt: skip
    broker = authority_settings(
        broker_sock, tmp_path, allow, organisation=BROKER_ORG, crawl_interval_s=0.0,
        crawl_notice_settle_s=0.1,
    )  # fmt: skip
    with ExitStack() as stack:
        stack.enter_context(serve_in_thread(create_broker(broker), broker_sock))
        stack.enter_context(serve_in_thread(create_connector(bureau), bureau_sock))
        stack.enter_context(serve_in_thread(create_connector(bank), bank_sock))
        for settings, role in (
            (bureau, CredentialType.PUBLIC_DATA_HOLDER),
            (bank, CredentialType.FINANCIAL_INSTITUTION),
        ):
            status = asyncio.run(onboard(settings, authority, [CredentialType.MEMBERSHIP, role]))
            assert status["status"] == "ISSUED", status
        publish(bureau.base_url, tmp_path)

        with ManagementClient(bank.base_url, ADMIN_KEY) as sdk:

            def crawled() -> bool:
                return sdk.broker_datasets(limit=100).total == 3

            eventually(crawled)
            found = sdk.broker_datasets("企业 名单", domain="economic-development", grade="general")
            assert found.broker == authority
            (hit,) = found.items
            assert (hit.provider, hit.dsp_address, hit.dataset_id) == (
                bureau.participant_id, f"{bureau.base_url}/dsp", FIRMS,
            )  # fmt: skip
            assert {f["value"]: f["count"] for f in found.facets["domain"]} == {
                "economic-development": 1, "industry-city": 1,
            }  # fmt: skip
            english = sdk.broker_datasets("firm list", sort="recency")
            assert {h.dataset_id for h in english.items} == {FIRMS, "urn:kexin:asset:loans"}

            # the broker's typed 400 comes back as a 400 with its reason; bad input stays local
            with pytest.raises(ApiError) as refused:
                sdk.broker_datasets('"()*')
            assert (refused.value.status, refused.value.reason) == (400, "no_search_terms")
        api = f"{bank.base_url}/management/v1/broker/datasets"
        assert httpx.get(api, params={"grade": "secret-ish"}, headers=KEY).status_code == 422
        assert httpx.get(api, params={"q": "x" * 201}, headers=KEY).status_code == 422
        assert httpx.get(api).status_code == 401

        # the CLI: the hit's fetch options, and fetch with them gets the data from the bureau
        runner = CliRunner()
        searched = runner.invoke(
            cli, ["search", "企业 名单", "--domain", "economic-development", "--grade", "general",
                  "--url", bank.base_url, "--api-key", ADMIN_KEY],
        )  # fmt: skip
        assert searched.exit_code == 0, searched.output
        assert "广州市企业名单" in searched.output
        (line,) = [x for x in searched.output.splitlines() if "dataspace fetch" in x]
        options = shlex.split(line)[2:]
        assert options == [
            "--provider", bureau.participant_id, "--provider-address", f"{bureau.base_url}/dsp",
            "--dataset", FIRMS,
        ]  # fmt: skip
        output = tmp_path / "got.csv"
        fetched = runner.invoke(
            cli, ["fetch", *options, "--purpose", "credit", "--output", str(output),
                  "--connector", bank.base_url, "--api-key", ADMIN_KEY],
        )  # fmt: skip
        assert fetched.exit_code == 0, fetched.output
        assert output.read_text(encoding="utf-8") == ROWS

        as_json = runner.invoke(
            cli, ["search", "空气", "--url", bank.base_url, "--api-key", ADMIN_KEY,
                  "--output", "json"],
        )  # fmt: skip
        assert as_json.exit_code == 0, as_json.output
        assert '"datasetId": "urn:kexin:asset:air"' in as_json.output


def test_without_a_broker_the_search_is_refused(tmp_path: Path) -> None:
    sock = bind()
    settings = connector_settings(sock, tmp_path, "alone", "did:web:nobody.example.cn")
    sock.close()
    with TestClient(create_connector(settings)) as client:
        answer = client.get("/management/v1/broker/datasets?q=x", headers=KEY)
    assert answer.status_code == 409
    assert answer.json()["reason"] == "no_broker"
