"""The end-to-end demo on embedded defaults (SQLite files in a temporary folder, loopback).

What runs: the broker (hosting the data-space authority), the ledger service and two
participants' connectors start as real servers with did:web identities; both connectors are
onboarded by the authority's allow-list and receive their credentials; the bank authenticates to
the city bureau the DCP way (self-issued token, presentation pulled from its Credential Service,
every credential verified); the bureau's ODRL offer of its firm list is decided on the bank's
verified credentials (allowed three times, refused the fourth); the operator revokes the bank's
licence credential and the bureau refuses the bank once its caches refresh. The demo then says
plainly which parts are not built yet instead of pretending to run them.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from broker.app import create_app as create_broker_app
from broker.settings import BrokerSettings, OnboardingGrant
from connector.app import create_app as create_connector_app
from connector.dcp.client import request_credentials
from connector.participant import standalone
from connector.settings import ConnectorSettings
from dataspace.servers import bind, serve_in_thread
from identity.credentials import CredentialType
from identity.presentations import scope_for
from ledger.app import create_app as create_ledger_app
from ledger.settings import LedgerSettings
from policy.evaluate import evaluate
from policy.jsonld import read_policy
from policy.lint import lint
from policy.operands import Context, CredentialFacts, Grade, Scope

Say = Callable[[str], object]
CACHE_TTL_S = 1.0
PASSPHRASE = "kexin demo passphrase, not for production"  # noqa: S105 - a throw-away demo
OPERATOR_KEY = "kexin-demo-operator-key"
BUREAU_ORG = {
    "name": "广州市政务服务数据管理局",
    "creditCode": "11440100MB2C12345P",
    "region": "440100",
    "dataGrade": "important",
}
BANK_ORG = {
    "name": "广州示例银行股份有限公司",
    "creditCode": "91440101MA59XKQ72B",
    "region": "440106",
    "dataGrade": "general",
}
FIRM_LIST_OFFER = {
    "@id": "urn:kexin:demo:firm-list-offer",
    "@type": "Offer",
    "permission": [
        {
            "action": "use",
            "constraint": [
                {
                    "leftOperand": "kexin:role",
                    "operator": "hasPart",
                    "rightOperand": "FinancialInstitution",
                },
                {"leftOperand": "purpose", "operator": "isA", "rightOperand": "credit-assessment"},
                {"leftOperand": "elapsedTime", "operator": "lteq", "rightOperand": "P30D"},
                {"leftOperand": "count", "operator": "lteq", "rightOperand": "3"},
            ],
            "duty": [
                {
                    "action": "delete",
                    "constraint": [
                        {"leftOperand": "elapsedTime", "operator": "lteq", "rightOperand": "P31D"}
                    ],
                }
            ],
        }
    ],
}
NOT_BUILT_YET = (
    "connector: DSP catalog, contract negotiation and transfer between two participants",
    "policy enforcement inside the connectors (the policy library runs on its own above)",
    "data plane: policy-enforcing transfers and the data contracts API",
    "ledger: anchoring audit events on an EVM chain, inclusion proofs",
    "matching: private set intersection between two connectors",
)


def did_of(port: int, name: str) -> str:
    return f"did:web:127.0.0.1%3A{port}:{name}"


def run(say: Say) -> int:
    """Run the demo, reporting through ``say``; return the exit code."""
    with tempfile.TemporaryDirectory(prefix="kexin-demo-") as scratch, ExitStack() as servers:
        folder = Path(scratch)
        sockets = {name: bind() for name in ("broker", "ledger", "bureau", "bank")}
        ports = {name: sock.getsockname()[1] for name, sock in sockets.items()}
        authority = did_of(ports["broker"], "authority")
        bureau, bank = (
            ConnectorSettings(
                participant_id=did_of(ports[name], name),
                public_url=f"http://127.0.0.1:{ports[name]}",
                database_url=f"sqlite:///{folder / f'{name}.db'}",
                key_passphrase=PASSPHRASE,  # type: ignore[arg-type]
                trusted_issuers={kind: [authority] for kind in CredentialType},
                did_web_allow_http=True,
                status_list_ttl_s=CACHE_TTL_S,
            )
            for name in ("bureau", "bank")
        )
        broker = BrokerSettings(
            authority_id=authority,
            public_url=f"http://127.0.0.1:{ports['broker']}",
            database_url=f"sqlite:///{folder / 'broker.db'}",
            key_passphrase=PASSPHRASE,  # type: ignore[arg-type]
            admin_api_key=OPERATOR_KEY,  # type: ignore[arg-type]
            did_web_allow_http=True,
            onboarding_allow={
                bureau.participant_id: OnboardingGrant.model_validate(
                    {
                        "types": ["MembershipCredential", "PublicDataHolderCredential"],
                        "organisation": BUREAU_ORG,
                    }
                ),
                bank.participant_id: OnboardingGrant.model_validate(
                    {
                        "types": ["MembershipCredential", "FinancialInstitutionCredential"],
                        "organisation": BANK_ORG,
                    }
                ),
            },
        )
        apps = {
            "broker (authority)": (create_broker_app(broker), sockets["broker"]),
            "ledger": (
                create_ledger_app(LedgerSettings(database_url=f"sqlite:///{folder / 'ledger.db'}")),
                sockets["ledger"],
            ),
            "connector (city bureau)": (create_connector_app(bureau), sockets["bureau"]),
            "connector (bank)": (create_connector_app(bank), sockets["bank"]),
        }
        failures = 0
        say("Kexin demo: starting the services on loopback (SQLite in a temporary folder)")
        for name, (service, sock) in apps.items():
            base_url = servers.enter_context(serve_in_thread(service, sock))
            body = httpx.get(f"{base_url}/health", timeout=10).json()
            failures += body["status"] != "ok"
            say(
                f"  {name:<24} {base_url}  health: {body['status']} "
                f"(database {body['database']}, schema {body['schema']})"
            )
        failures += not asyncio.run(run_identity(say, authority, broker.base_url, bureau, bank))
    say("Not built yet, so not part of this run:")
    for part in NOT_BUILT_YET:
        say(f"  - {part}")
    if failures:
        say(f"{failures} check(s) failed")
        return 1
    say("Everything built so far ran as expected.")
    return 0


async def verified_by(caller: ConnectorSettings, target: ConnectorSettings) -> httpx.Response:
    """``caller`` calls ``target``, which authenticates it the DCP way."""
    async with standalone(caller) as (participant, client):
        token = participant.sts.bearer_for(
            target.participant_id, [scope_for(kind) for kind in CredentialType]
        )
        return await client.get(
            f"{target.base_url}/identity/peer", headers={"Authorization": f"Bearer {token}"}
        )


async def run_identity(
    say: Say, authority: str, broker_url: str, bureau: ConnectorSettings, bank: ConnectorSettings
) -> bool:
    say(f"Identity: the data-space authority is {authority}")
    for settings, role in (
        (bureau, CredentialType.PUBLIC_DATA_HOLDER),
        (bank, CredentialType.FINANCIAL_INSTITUTION),
    ):
        async with standalone(settings) as (participant, client):
            status = await request_credentials(
                participant, client, authority, [CredentialType.MEMBERSHIP, role]
            )
        say(f"  {settings.participant_id} asks for Membership + {role.value}: {status['status']}")
    response = await verified_by(bank, bureau)
    if response.status_code != httpx.codes.OK:
        say(f"  the bureau refused the bank: {response.text}")
        return False
    peer = response.json()
    say(
        f"  the bureau verified the bank: membership {peer['membership']}, roles {peer['roles']}, "
        f"grade {peer['dataGrade']}, region {peer['region']}"
    )
    ok = run_policy(say, peer)

    admin = {"X-Api-Key": OPERATOR_KEY}
    async with httpx.AsyncClient(base_url=broker_url, headers=admin, timeout=10) as operator:
        issued = (
            await operator.get("/admin/credentials", params={"holder": bank.participant_id})
        ).json()
        licence = next(c for c in issued if c["type"] == "FinancialInstitutionCredential")
        await operator.post(f"/admin/credentials/{licence['id']}/revoke")
    say("  the operator revokes the bank's FinancialInstitutionCredential")
    await asyncio.sleep(CACHE_TTL_S * 1.5)
    refused = await verified_by(bank, bureau)
    reason = refused.json().get("reason")
    say(f"  after the caches refresh the bureau answers {refused.status_code}: {reason}")
    return ok and refused.status_code == httpx.codes.FORBIDDEN and reason == "revoked_credential"


def run_policy(say: Say, peer: dict[str, Any]) -> bool:
    """The bureau's offer of its firm list, decided on the bank's verified credentials."""
    now = datetime.now(UTC)
    say("Policy: the city bureau offers its firm list to licensed banks, for credit assessment,")
    say("        30 days, at most 3 downloads, deleted within 31 days")
    findings = lint(FIRM_LIST_OFFER, now)
    say(f"  lint: {len(findings)} finding(s)" + "".join(f"\n    {f}" for f in findings))
    policy = read_policy(FIRM_LIST_OFFER)
    facts = CredentialFacts(
        membership=peer["membership"],
        roles=frozenset(peer["roles"]),
        data_grade=Grade(peer["dataGrade"]) if peer["dataGrade"] else None,
        region=peer["region"],
    )
    outcomes = []
    for uses_so_far in range(4):
        context = Context(
            now=now,
            recipient=peer["participant"],
            purpose="credit-assessment",
            agreement_start=now - timedelta(days=2),
            uses_so_far=uses_so_far,
            credentials=facts,
        )
        decision = evaluate(policy, context, Scope.ACCESS, "read")
        outcomes.append(decision.allowed)
        verdict = "allowed" if decision.allowed else "refused"
        say(f"  download {uses_so_far + 1} by the bank: {verdict}: {decision.reasons[-1]}")
    return not findings and outcomes == [True, True, True, False]
