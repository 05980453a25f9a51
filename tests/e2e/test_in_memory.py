"""Two connectors and the authority talking in memory (STYLE: h11's ConnectionPair idea): the
apps run in one event loop, their lifespans started directly, and every HTTP call between them
goes through httpx.ASGITransport, routed by host. No sockets; the same code as on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from pydantic import SecretStr

from broker.app import create_app as create_broker
from broker.settings import BrokerSettings, OnboardingGrant
from connector.app import create_app as create_connector
from connector.dcp.client import request_credentials
from connector.settings import ConnectorSettings
from identity.credentials import CredentialType
from tests.participants import ADMIN_KEY, BANK_ORG, BUREAU_ORG, PASSPHRASE
from tests.policy.policies import FIRM_LIST

AUTHORITY, BUREAU, BANK = "did:web:authority.test", "did:web:bureau.test", "did:web:bank.test"
KEY = {"X-Api-Key": ADMIN_KEY}


class Router(httpx.AsyncBaseTransport):
    """Sends each request to the in-memory app that owns its host."""

    def __init__(self) -> None:
        self.apps: dict[str, httpx.ASGITransport] = {}

    def add(self, host: str, app: FastAPI) -> None:
        self.apps[host] = httpx.ASGITransport(app=app)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        transport = self.apps.get(request.url.host)
        if transport is None:
            raise httpx.ConnectError(f"no app at {request.url.host}", request=request)
        return await transport.handle_async_request(request)


def connector(folder: Path, name: str, router: Router) -> FastAPI:
    settings = ConnectorSettings(
        participant_id=f"did:web:{name}.test",
        public_url=f"http://{name}.test",
        database_url=f"sqlite:///{folder / f'{name}.db'}",
        key_passphrase=SecretStr(PASSPHRASE),
        management_api_key=SecretStr(ADMIN_KEY),
        trusted_issuers={kind: [AUTHORITY] for kind in CredentialType},
        did_web_allow_http=True,
        data_roots=[Path("/srv")],
    )
    return create_connector(settings, transport=router)


async def until(check: Callable[[], Any], timeout_s: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


After = Callable[[httpx.AsyncClient, dict[str, Any]], Awaitable[dict[str, Any]]]


async def exchange(
    folder: Path, router: Router | None = None, after: After | None = None
) -> dict[str, Any]:
    """Onboard both, publish, negotiate: the bank's negotiation once FINALIZED, or what
    ``after`` makes of it while both connectors still run."""
    router = router or Router()
    broker = BrokerSettings(
        authority_id=AUTHORITY,
        public_url="http://authority.test",
        database_url=f"sqlite:///{folder / 'broker.db'}",
        key_passphrase=SecretStr(PASSPHRASE),
        admin_api_key=SecretStr(ADMIN_KEY),
        did_web_allow_http=True,
        onboarding_allow={
            BUREAU: OnboardingGrant.model_validate(
                {"types": ["MembershipCredential"], "organisation": BUREAU_ORG}
            ),
            BANK: OnboardingGrant.model_validate(
                {
                    "types": ["MembershipCredential", "FinancialInstitutionCredential"],
                    "organisation": BANK_ORG,
                }
            ),
        },
    )
    apps = {"authority.test": create_broker(broker, transport=router)}
    apps["bureau.test"] = connector(folder, "bureau", router)
    apps["bank.test"] = connector(folder, "bank", router)
    async with AsyncExitStack() as stack:
        for host, app in apps.items():
            router.add(host, app)
            await stack.enter_async_context(app.router.lifespan_context(app))
        client = await stack.enter_async_context(httpx.AsyncClient(transport=router))
        for app, types in (
            (apps["bureau.test"], [CredentialType.MEMBERSHIP]),
            (apps["bank.test"], [CredentialType.MEMBERSHIP, CredentialType.FINANCIAL_INSTITUTION]),
        ):
            status = await request_credentials(app.state.participant, client, AUTHORITY, types)
            assert status["status"] == "ISSUED"
        publish = "http://bureau.test/management/v1"
        await client.post(
            f"{publish}/assets",
            headers=KEY,
            json={
                "id": "urn:kexin:asset:firm-list",
                "titleEn": "Firm list",
                "dataGrade": "general",
                "dataAddress": {"type": "file", "path": "/srv/firms.csv"},
            },
        )
        await client.post(
            f"{publish}/policydefinitions", headers=KEY, json={"id": "terms", "policy": FIRM_LIST}
        )
        await client.post(
            f"{publish}/policydefinitions",
            headers=KEY,
            json={
                "id": "members",
                "policy": {
                    "@type": "Set",
                    "permission": [
                        {
                            "action": "use",
                            "constraint": [
                                {
                                    "leftOperand": "kexin:membership",
                                    "operator": "eq",
                                    "rightOperand": "active",
                                }
                            ],
                        }
                    ],
                },
            },
        )
        await client.post(
            f"{publish}/contractdefinitions",
            headers=KEY,
            json={"id": "cd", "accessPolicyId": "members", "contractPolicyId": "terms"},
        )
        sts = apps["bank.test"].state.participant.sts
        catalog = (
            await client.post(
                "http://bureau.test/dsp/catalog/request",
                json={
                    "@context": ["https://w3id.org/dspace/2025/1/context.jsonld"],
                    "@type": "CatalogRequestMessage",
                },
                headers={
                    "Authorization": "Bearer "
                    + sts.bearer_for(
                        BUREAU,
                        [
                            "org.eclipse.dspace.dcp.vc.type:MembershipCredential",
                            "org.eclipse.dspace.dcp.vc.type:FinancialInstitutionCredential",
                        ],
                    )
                },
            )
        ).json()
        offer = catalog["dataset"][0]["hasPolicy"][0]
        started = (
            await client.post(
                "http://bank.test/management/v1/negotiations",
                headers=KEY,
                json={
                    "counterPartyId": BUREAU,
                    "counterPartyAddress": "http://bureau.test/dsp",
                    "offer": offer,
                    "target": "urn:kexin:asset:firm-list",
                    "purpose": "credit-assessment",
                },
            )
        ).json()
        url = f"http://bank.test/management/v1/negotiations/{started['id']}"

        async def finalized() -> bool:
            return bool((await client.get(url, headers=KEY)).json()["state"] == "FINALIZED")

        await until(finalized)
        result: dict[str, Any] = (await client.get(url, headers=KEY)).json()
        return result if after is None else await after(client, result)


def test_the_exchange_in_memory(tmp_path: Path) -> None:
    negotiation = asyncio.run(exchange(tmp_path))
    assert negotiation["state"] == "FINALIZED"
    assert negotiation["agreement"]["assignee"] == BANK
    assert negotiation["agreement"]["assigner"] == BUREAU
