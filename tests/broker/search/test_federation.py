"""The federated catalogue on real loopback servers: the broker, a participant with its own DID
and MembershipCredential, crawls the connectors of the city bureau and the bank (DCP, every
page), sees what each access policy admits it to, and the bank finds the bureau's firm list
through the broker (DID, DSP address, dataset id) and asks the bureau for it directly. A
withdrawn asset disappears at the next crawl; a suspended participant's datasets go; a
connector that stops answering is stale, then dropped after the grace period."""

from __future__ import annotations

import asyncio
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

from broker.app import create_app as create_broker
from connector.app import create_app as create_connector
from dataspace.servers import bind, serve_in_thread
from identity.credentials import CredentialType
from tests.dsp_schemas import errors
from tests.e2e.space import call, onboard
from tests.participants import (
    ADMIN_KEY,
    BANK_ORG,
    BUREAU_ORG,
    authority_settings,
    connector_settings,
    did_for,
)

KEY = {"X-Api-Key": ADMIN_KEY}
DSP = "https://w3id.org/dspace/2025/1/context.jsonld"
BROKER_ORG = {
    "name": "广州数据交易所",
    "creditCode": "91440101MA59XKQ72B",
    "region": "440100",
    "dataGrade": "general",
}
GRACE_S = 1.0
MEMBERS = {
    "@type": "Set",
    "permission": [
        {
            "action": "use",
            "constraint": [
                {"leftOperand": "kexin:membership", "operator": "eq", "rightOperand": "active"}
            ],
        }
    ],
}
BANKS = {
    "@type": "Set",
    "permission": [
        {
            "action": "use",
            "constraint": [
                {
                    "leftOperand": "kexin:role",
                    "operator": "hasPart",
                    "rightOperand": "FinancialInstitution",
                }
            ],
        }
    ],
}


def publish(base: str) -> None:
    api = base + "/management/v1"
    for name, title_zh, title_en, domain in (
        ("firm-list", "广州市企业名单", "Guangzhou firm list", "economic-development"),
        ("air", "空气质量监测数据", "Air quality", "ecological-environment"),
        ("stats", "人口统计", "Population statistics", None),
        ("loans", "企业贷款记录", "Firm loans", "economic-development"),
    ):
        created = httpx.post(
            f"{api}/assets", headers=KEY,
            json={
                "id": f"urn:kexin:asset:{name}", "titleZh": title_zh, "titleEn": title_en,
                "dataGrade": "general", "region": "440106",
                "dataAddress": {"type": "file", "path": f"/srv/{name}.csv"},
                **({"domain": domain} if domain else {}),
                **({"registrationCode": "GZ-SJ-2026-0001"} if name == "firm-list" else {}),
            },
        )  # fmt: skip
        assert created.status_code == 201, created.text
    for identifier, policy in (("members", MEMBERS), ("banks", BANKS)):
        answer = httpx.post(
            f"{api}/policydefinitions", headers=KEY, json={"id": identifier, "policy": policy}
        )
        assert answer.status_code == 201, answer.text
    for identifier, access, assets in (
        ("cd-members", "members", ["firm-list", "air", "stats"]),
        ("cd-banks", "banks", ["loans"]),
    ):
        answer = httpx.post(
            f"{api}/contractdefinitions", headers=KEY,
            json={
                "id": identifier, "accessPolicyId": access, "contractPolicyId": "members",
                "assetSelector": {"assetIds": [f"urn:kexin:asset:{a}" for a in assets]},
            },
        )  # fmt: skip
        assert answer.status_code == 201, answer.text


def crawl(broker_url: str) -> dict[str, dict[str, Any]]:
    answer = httpx.post(f"{broker_url}/admin/catalogue/crawl", headers=KEY, timeout=30)
    assert answer.status_code == 200, answer.text
    return {report["provider"]: report for report in answer.json()["providers"]}


def test_the_broker_crawls_and_the_bank_finds_the_firm_list_through_it(tmp_path: Path) -> None:
    broker_sock, bureau_sock, bank_sock = bind(), bind(), bind()
    authority = did_for(broker_sock, "authority")
    bureau = connector_settings(bureau_sock, tmp_path, "bureau", authority, ttl_s=0.3, page_size=2)
    bank = connector_settings(bank_sock, tmp_path, "bank", authority, ttl_s=0.3)
    allow = {
        bureau.participant_id: {"types": ["MembershipCredential", "PublicDataHolderCredential"], "organisation": BUREAU_ORG},
        bank.participant_id: {"types": ["MembershipCredential", "FinancialInstitutionCredential"], "organisation": BANK_ORG},
    }  # fmt: skip
    broker = authority_settings(
        broker_sock, tmp_path, allow, organisation=BROKER_ORG, crawl_interval_s=0.0,
        crawl_grace_s=GRACE_S,
    )  # fmt: skip
    with ExitStack() as stack:
        broker_url = stack.enter_context(serve_in_thread(create_broker(broker), broker_sock))
        bureau_stack = stack.enter_context(ExitStack())
        bureau_stack.enter_context(serve_in_thread(create_connector(bureau), bureau_sock))
        stack.enter_context(serve_in_thread(create_connector(bank), bank_sock))
        for settings, role in (
            (bureau, CredentialType.PUBLIC_DATA_HOLDER),
            (bank, CredentialType.FINANCIAL_INSTITUTION),
        ):
            status = asyncio.run(onboard(settings, authority, [CredentialType.MEMBERSHIP, role]))
            assert status["status"] == "ISSUED", status
        publish(bureau.base_url)

        reports = crawl(broker_url)
        assert reports[bureau.participant_id]["state"] == "current", reports
        # every page (two datasets a page), and only what the access policies admit the broker
        assert reports[bureau.participant_id]["datasets"] == 3
        assert reports[bank.participant_id] == {
            "provider": bank.participant_id, "state": "current", "reason": None, "datasets": 0,
            "added": 0, "changed": 0, "removed": 0, "pagesRead": 1, "pagesUnchanged": 0,
        }  # fmt: skip

        # the bank searches through the broker (DCP) and asks the bureau itself
        search = f"{broker_url}/catalogue/v1/datasets?q=企业+名单&domain=economic-development"
        found = asyncio.run(call(bank, authority, search))
        assert found.status_code == 200, found.text
        (hit,) = found.json()["items"]
        assert hit["provider"] == bureau.participant_id
        assert hit["dspAddress"] == f"{bureau.base_url}/dsp"
        assert hit["datasetId"] == "urn:kexin:asset:firm-list"
        assert hit["registrationCode"] == "GZ-SJ-2026-0001"  # TC609's, as the bureau gave it
        assert (
            hit["domainName"]
            == [
                {"@value": "经济发展", "@language": "zh"},
                {"@value": "Economic Development", "@language": "en"},
            ]
            or hit["domainName"][0]["@language"] == "zh"
        )
        direct = asyncio.run(
            call(
                bank, bureau.participant_id,
                f"{hit['dspAddress']}/catalog/datasets/{hit['datasetId']}",
            )
        )  # fmt: skip
        assert direct.status_code == 200, direct.text
        assert direct.json()["@id"] == hit["datasetId"]

        # the same as a DSP Catalog of the providers' catalogues, schema-valid, for members
        request = {"@context": [DSP], "@type": "CatalogRequestMessage"}
        dsp = asyncio.run(
            call(bank, authority, f"{broker_url}/dsp/catalog/request", method="POST", body=request)
        )
        assert dsp.status_code == 200, dsp.text
        assert errors("catalog/catalog-schema.json", dsp.json()) == []
        (bureau_catalog,) = dsp.json()["catalog"]
        assert bureau_catalog["service"][0]["endpointURL"] == f"{bureau.base_url}/dsp"
        assert len(bureau_catalog["dataset"]) == 3
        outsider = httpx.post(f"{broker_url}/dsp/catalog/request", json=request)
        assert outsider.status_code == 401

        # refreshed, nothing changed: both pages of the bureau are 304s, nothing is written;
        # an asset written again: its page alone is read
        again = crawl(broker_url)[bureau.participant_id]
        assert (again["pagesRead"], again["pagesUnchanged"], again["changed"]) == (0, 2, 0)
        retitled = httpx.put(
            f"{bureau.base_url}/management/v1/assets/urn:kexin:asset:stats", headers=KEY,
            json={
                "id": "urn:kexin:asset:stats", "titleZh": "人口统计新版",
                "titleEn": "Population statistics", "dataGrade": "general", "region": "440106",
                "dataAddress": {"type": "file", "path": "/srv/stats.csv"},
            },
        )  # fmt: skip
        assert retitled.status_code == 200, retitled.text
        again = crawl(broker_url)[bureau.participant_id]
        assert (again["pagesRead"], again["pagesUnchanged"], again["changed"]) == (1, 1, 1)

        # withdrawn at the bureau (out of its definition, then deleted): gone at the next crawl
        narrowed = httpx.put(
            f"{bureau.base_url}/management/v1/contractdefinitions/cd-members", headers=KEY,
            json={
                "id": "cd-members", "accessPolicyId": "members", "contractPolicyId": "members",
                "assetSelector": {
                    "assetIds": ["urn:kexin:asset:firm-list", "urn:kexin:asset:stats"]
                },
            },
        )  # fmt: skip
        assert narrowed.status_code == 200, narrowed.text
        gone = httpx.delete(
            f"{bureau.base_url}/management/v1/assets/urn:kexin:asset:air", headers=KEY
        )
        assert gone.status_code == 204, gone.text
        assert crawl(broker_url)[bureau.participant_id]["removed"] == 1
        air = asyncio.run(call(bank, authority, f"{broker_url}/catalogue/v1/datasets?q=空气"))
        assert air.json()["total"] == 0

        # suspended: its datasets go; reinstated: back at the next crawl
        suspend = {"participant": bureau.participant_id, "reason": "inquiry"}
        assert httpx.post(
            f"{broker_url}/admin/participants/suspend", json=suspend, headers=KEY
        ).is_success
        assert crawl(broker_url)[bureau.participant_id]["state"] is None
        everything = asyncio.run(call(bank, authority, f"{broker_url}/catalogue/v1/datasets"))
        assert everything.json()["total"] == 0
        reinstate = {"participant": bureau.participant_id}
        assert httpx.post(
            f"{broker_url}/admin/participants/reinstate", json=reinstate, headers=KEY
        ).is_success
        assert crawl(broker_url)[bureau.participant_id]["datasets"] == 2

        # the bureau stops answering: stale with its datasets, then dropped after the grace
        bureau_stack.close()
        stale = crawl(broker_url)[bureau.participant_id]
        assert (stale["state"], stale["datasets"]) == ("stale", 2)
        providers = httpx.get(f"{broker_url}/admin/catalogue/providers", headers=KEY).json()
        bureau_crawl = next(p for p in providers if p["provider"] == bureau.participant_id)
        assert bureau_crawl["state"] == "stale"
        assert bureau_crawl["lastSuccessAt"] is not None
        time.sleep(GRACE_S + 0.2)
        assert crawl(broker_url)[bureau.participant_id]["datasets"] == 0
