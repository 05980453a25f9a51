"""The end-to-end demo on embedded defaults (SQLite files in a temporary folder, loopback).

What runs: the broker (hosting the data-space authority), the ledger service and two
participants' connectors start as real servers with did:web identities; both connectors are
onboarded by the authority's allow-list and receive their credentials; the bank authenticates to
the city bureau the DCP way (self-issued token, presentation pulled from its Credential Service,
every credential verified); the bureau publishes its firm list with an ODRL offer, and its
change notice has the broker crawl its catalogue; the bank finds the firm list by searching the
broker (Chinese full text, a scenario domain), reads the bureau's catalogue, negotiates (the
contract policy decides on the bank's verified credentials and declared purpose) to an agreement
in one call of its data contracts API, which also starts the transfer; the bank downloads the
firm list twice from the bureau's data plane, the third download is refused by the agreement's
count limit and the bureau's policy monitor ends the transfer; the bank deletes the data and its
connector sends a signed deletion receipt; the operator revokes the bank's licence credential:
once the caches refresh, the bank's connector believes it revoked and no longer presents it, and
the bureau admits the bank as a member without the licence (the firm list, which needs it,
leaves the bank's catalogue). Before the revocation, the bank matches its borrowers against the
bureau's key enterprises by private set intersection (one run agreed; the second is refused).
Then the regulator (its RegulatorCredential, DCP) reads both sides' signed, anchored events at
the ledger service, verifies one download's inclusion proof against the chain and sees a clean
reconciliation; a tampered copy of the ledger's store is named by the verification. The chain is
a local anvil node (``ledger.localnode``) that the demo starts with a state file in its folder
and on which the operator deploys the anchor contract; after the regulator's checks the demo
stops it and starts it again from that file (the connectors queue their batches meanwhile), and
the download's proof still verifies against it.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import ipaddress
import sqlite3
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr
from sqlmodel import Session

from broker.app import create_app as create_broker_app
from broker.authority.client import AdminClient
from broker.settings import BrokerSettings, OnboardingGrant
from connector.app import create_app as create_connector_app
from connector.audit import SqlAuditSink
from connector.contracts.client import ContractsClient, ContractsError
from connector.dcp.client import request_credentials
from connector.management.client import ManagementClient
from connector.management.views import BrokerHit
from connector.participant import standalone
from connector.protocol import DSP_CONTEXT
from connector.settings import ConnectorSettings
from dataspace.servers import bind, serve_in_thread
from identity.credentials import CredentialType
from identity.presentations import EVERY_SCOPE
from ledger.app import create_app as create_ledger_app
from ledger.chain import AnchorRegistry, Chain, ChainError, address_of, new_account_key
from ledger.events import EventType
from ledger.inspection import verify_archive
from ledger.localnode import LocalNodeError, local_node
from ledger.messages import ProofBundle
from ledger.proofs import InvalidProofError, check_bundle
from ledger.settings import LedgerSettings
from matching.identifiers import Kind, read_column
from matching.synthetic import Dataset, generate, write_csv
from policy.lint import lint
from service.client import ApiError
from storage.engine import create_engine

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
BROKER_ORG = {
    "name": "广州数据交易所",
    "creditCode": "91440101MA5CYL0X2G",
    "region": "440100",
    "dataGrade": "general",
}
REGULATOR_ORG = {
    "name": "广东省数据监管局",
    "creditCode": "11440000MB2C12345J",
    "region": "440000",
    "dataGrade": "core",
}
BANK_ORG = {
    "name": "广州示例银行股份有限公司",
    "creditCode": "91440101MA59XKQ72B",
    "region": "440106",
    "dataGrade": "general",
}
FIRM_LIST = "urn:kexin:asset:firm-list"
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
                {"leftOperand": "count", "operator": "lteq", "rightOperand": "2"},
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
LOOPBACK = [ipaddress.ip_network("127.0.0.0/8")]
"""The demo runs on 127.0.0.1, which the outbound destination policy refuses unless allowed."""
CHAIN_TIMEOUT_S = 10.0


def did_of(port: int, name: str) -> str:
    return f"did:web:127.0.0.1%3A{port}:{name}"


MATCH_SIZE = 100_000
"""How many firms the bureau's key-enterprise list and the bank's borrowers each hold."""


def run(say: Say, *, match_size: int = MATCH_SIZE) -> int:
    """Run the demo, reporting through ``say``; return the exit code. ``match_size``: the
    lists the matching part compares (the tests run it smaller)."""
    with tempfile.TemporaryDirectory(prefix="kexin-demo-") as scratch, ExitStack() as servers:
        folder = Path(scratch)
        sockets = {name: bind() for name in ("broker", "ledger", "bureau", "bank", "regulator")}
        for sock in sockets.values():
            servers.callback(sock.close)  # also when a setting is refused before they serve
        ports = {name: sock.getsockname()[1] for name, sock in sockets.items()}
        authority = did_of(ports["broker"], "authority")
        # the chain: a local EVM node (anvil) keeping its state in a file, so that it can be
        # restarted; the operator deploys the anchor contract on it
        node = LocalChain(folder / "chain-state.json")
        servers.enter_context(node)
        try:
            chain = Chain.connect(node.start(), timeout_s=CHAIN_TIMEOUT_S)
        except LocalNodeError as error:
            say(f"Kexin demo: the local chain did not start: {error}")
            return 1
        operator_key = new_account_key()
        chain.dev_fund(address_of(operator_key))
        registry = chain.deploy(operator_key)
        ledger_id = did_of(ports["ledger"], "ledger")
        bureau, bank, regulator = (
            ConnectorSettings(
                participant_id=did_of(ports[name], name),
                public_url=f"http://127.0.0.1:{ports[name]}",
                database_url=f"sqlite:///{folder / f'{name}.db'}",
                key_passphrase=PASSPHRASE,  # type: ignore[arg-type]
                trusted_issuers={kind: [authority] for kind in CredentialType},
                did_web_allow_http=True,
                outbound_allowed_networks=LOOPBACK,
                data_roots=[folder],
                status_list_ttl_s=CACHE_TTL_S,
                management_api_key=MANAGER_KEY,  # type: ignore[arg-type]
                monitor_interval_s=0.5,
                # the bureau tells the broker of its changes, the bank searches through it
                broker_url=f"http://127.0.0.1:{ports['broker']}",
                broker_id=authority,
            )
            for name in ("bureau", "bank", "regulator")
        )
        # the bureau and the bank feed the regulator's ledger, each from its own chain account
        bureau, bank = (
            with_ledger(settings, chain, operator_key, registry.address, ports["ledger"], ledger_id)
            for settings in (bureau, bank)
        )
        broker = BrokerSettings(
            authority_id=authority,
            public_url=f"http://127.0.0.1:{ports['broker']}",
            database_url=f"sqlite:///{folder / 'broker.db'}",
            key_passphrase=PASSPHRASE,  # type: ignore[arg-type]
            admin_api_key=OPERATOR_KEY,  # type: ignore[arg-type]
            did_web_allow_http=True,
            outbound_allowed_networks=LOOPBACK,
            # a member itself, it crawls the catalogues on the providers' notices
            organisation=BROKER_ORG,  # type: ignore[arg-type]
            crawl_interval_s=0.0,
            crawl_notice_settle_s=0.1,
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
                regulator.participant_id: OnboardingGrant.model_validate(
                    {
                        "types": ["MembershipCredential", "RegulatorCredential"],
                        "organisation": REGULATOR_ORG,
                    }
                ),
            },
        )
        apps = {
            "broker (authority)": (create_broker_app(broker), sockets["broker"]),
            "ledger": (
                create_ledger_app(
                    LedgerSettings(
                        ledger_id=ledger_id,
                        registry_address=registry.address,
                        public_url=f"http://127.0.0.1:{ports['ledger']}",
                        database_url=f"sqlite:///{folder / 'ledger.db'}",
                        key_passphrase=PASSPHRASE,  # type: ignore[arg-type]
                        trusted_issuers={kind: [authority] for kind in CredentialType},
                        did_web_allow_http=True,
                        outbound_allowed_networks=LOOPBACK,
                    ),
                    chain=chain,
                ),
                sockets["ledger"],
            ),
            "connector (city bureau)": (
                create_connector_app(bureau, chain=chain),
                sockets["bureau"],
            ),
            "connector (bank)": (create_connector_app(bank, chain=chain), sockets["bank"]),
            "connector (regulator)": (create_connector_app(regulator), sockets["regulator"]),
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
        failures += not asyncio.run(onboard_and_verify(say, authority, bureau, bank))
        try:
            failures += not run_exchange(say, bureau, bank, folder)
            failures += not run_matching(say, bureau, bank, folder, match_size)
            failures += not ledger_settled(say, (bureau, bank))
            proved, bundle = asyncio.run(
                regulate(say, regulator, authority, ledger_id, ports["ledger"], registry, folder)
            )
            failures += not proved
            failures += not restart_chain(say, node, registry, bundle)
            failures += not asyncio.run(revoke_and_check(say, broker.base_url, bureau, bank))
        except ApiError as error:  # a service refused a step: the rest cannot follow
            say(f"  refused ({error.status}): {error}")
            failures += 1
    if failures:
        say(f"{failures} check(s) failed")
        return 1
    say("Everything built so far ran as expected.")
    return 0


async def verified_by(caller: ConnectorSettings, target: ConnectorSettings) -> httpx.Response:
    """``caller`` calls ``target``, which authenticates it the DCP way."""
    async with standalone(caller) as (participant, client):
        token = participant.sts.bearer_for(target.participant_id, EVERY_SCOPE)
        return await client.get(
            f"{target.base_url}/identity/peer", headers={"Authorization": f"Bearer {token}"}
        )


async def onboard_and_verify(
    say: Say, authority: str, bureau: ConnectorSettings, bank: ConnectorSettings
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
    return True


async def revoke_and_check(
    say: Say, broker_url: str, bureau: ConnectorSettings, bank: ConnectorSettings
) -> bool:
    with AdminClient(broker_url, OPERATOR_KEY, timeout_s=10) as operator:
        issued = operator.credentials(holder=bank.participant_id)
        licence = next(c for c in issued if c.type == "FinancialInstitutionCredential")
        operator.revoke(licence.id)
    say("  the operator revokes the bank's FinancialInstitutionCredential")
    await asyncio.sleep(CACHE_TTL_S * 1.5)
    with ManagementClient(bank.base_url, MANAGER_KEY, timeout_s=10) as manager:
        held = manager.credentials().items
    beliefs = dict(sorted((h.type, h.status) for h in held))
    say(f"  the bank's connector believes its credentials: {beliefs}")
    after = await verified_by(bank, bureau)
    peer = after.json()
    offered = [d["@id"] for d in (await read_catalog(bank, bureau)).get("dataset", [])]
    say(
        f"  after the caches refresh the bureau answers {after.status_code}: membership "
        f"{peer.get('membership')}, roles {peer.get('roles')}; the bank's catalogue: {offered}"
    )
    return (
        beliefs.get("FinancialInstitutionCredential") == "revoked"
        and after.status_code == httpx.codes.OK
        and peer.get("membership") is True
        and peer.get("roles") == []
        and FIRM_LIST not in offered
    )


MANAGER_KEY = "kexin-demo-management-key"


async def read_catalog(bank: ConnectorSettings, bureau: ConnectorSettings) -> dict[str, Any]:
    """The bank asks for the bureau's catalogue (DCP-authenticated)."""
    async with standalone(bank) as (participant, client):
        token = participant.sts.bearer_for(bureau.participant_id, EVERY_SCOPE)
        response = await client.post(
            f"{bureau.base_url}/dsp/catalog/request",
            json={"@context": [DSP_CONTEXT], "@type": "CatalogRequestMessage"},
            headers={"Authorization": f"Bearer {token}"},
        )
        catalog: dict[str, Any] = response.json()
        return catalog


def settled(client: httpx.Client, url: str, states: tuple[str, ...]) -> bool:
    state: str = client.get(url).json()["state"]
    return state in states


def poll(check: Callable[[], bool], timeout_s: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def run_exchange(
    say: Say, bureau: ConnectorSettings, bank: ConnectorSettings, folder: Path
) -> bool:
    """The bureau publishes, the bank finds it through the broker, agrees and downloads;
    policy decides each step."""
    with ManagementClient(bureau.base_url, MANAGER_KEY, timeout_s=10) as publish:
        return exchange(say, bureau, bank, publish, folder)


def write_firm_list(path: Path, firms: int = 5000) -> None:
    """The bureau's data: a firm register extract (made up, in the real format)."""
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["credit_code", "name", "district", "registered_capital_wan"])
        for n in range(firms):
            writer.writerow(
                [f"91440101MA{n:08d}", f"广州示例企业{n}有限公司", "440106", n % 900 + 100]
            )


def exchange(
    say: Say,
    bureau: ConnectorSettings,
    bank: ConnectorSettings,
    publish: ManagementClient,
    folder: Path,
) -> bool:
    broker = str(bank.broker_id)
    write_firm_list(folder / "firms.csv")
    findings = lint(FIRM_LIST_OFFER, datetime.now(UTC))
    say("Exchange: the city bureau offers its firm list to licensed banks, for credit assessment,")
    say(
        "          30 days, at most 2 downloads, deleted within 31 days"
        f" (lint: {len(findings)} finding(s))"
    )
    publish.create_asset(
        {
            "id": "urn:kexin:asset:firm-list",
            "titleZh": "企业名录",
            "titleEn": "Firm list",
            "domain": "economic-development",
            "dataGrade": "important",
            "region": "440100",
            "dataAddress": {"type": "file", "path": str(folder / "firms.csv")},
        }
    )
    # who may see the offer: licensed banks, and the broker, which lists it (the contract
    # policy still decides who gets the data)
    seen_by = [
        {
            "leftOperand": "kexin:role",
            "operator": "hasPart",
            "rightOperand": "FinancialInstitution",
        },
        {"leftOperand": "recipient", "operator": "eq", "rightOperand": broker},
    ]
    publish.create_policy(
        "banks",
        {"@type": "Set", "permission": [{"action": "use", "constraint": [{"or": seen_by}]}]},
    )
    publish.create_policy("firm-terms", FIRM_LIST_OFFER)
    publish.create_contract_definition(
        {
            "id": "firm-list",
            "accessPolicyId": "banks",
            "contractPolicyId": "firm-terms",
            "assetSelector": {"assetIds": ["urn:kexin:asset:firm-list"]},
        }
    )
    with ManagementClient(bank.base_url, MANAGER_KEY, timeout_s=10) as manager:
        hits: list[BrokerHit] = []

        def found() -> bool:
            hits[:] = manager.broker_datasets("企业 名录", domain="economic-development").items
            return bool(hits)

        listed = poll(found)  # the bureau's change notice has the broker crawl it at once
    if not listed:
        say("  the broker did not list the firm list")
        return False
    (hit,) = hits
    say(
        f"  the bank searches the broker for 企业 名录 in economic-development: {hit.dataset_id}"
        f" of {hit.provider}, at {hit.dsp_address}"
    )
    catalog = asyncio.run(read_catalog(bank, bureau))
    datasets = catalog.get("dataset", [])
    say(f"  the bank reads the bureau's catalogue: {[d['@id'] for d in datasets]}")
    if not datasets:
        return False
    return not findings and fetch_data(say, hit, bank, folder)


def fetch_data(say: Say, hit: BrokerHit, bank: ConnectorSettings, folder: Path) -> bool:
    """The bank's application asks its connector for the firm list the broker found (one
    call), downloads it from the bureau's data plane, hits the count limit, and deletes the
    data with a receipt."""
    ok = True
    bureau_url = hit.dsp_address.removesuffix("/dsp")
    with ContractsClient(bank.base_url, MANAGER_KEY, timeout_s=30) as app:
        grant = app.request_data(hit.provider, hit.dsp_address, hit.dataset_id, "credit-assessment")
        say(f"  one call to the bank's data contracts API: agreement {grant.agreement_id}")
        say(f"  transfer {grant.transfer_id} started; data plane {grant.endpoint}")
        expected = hashlib.sha256((folder / "firms.csv").read_bytes()).hexdigest()
        for number in (1, 2, 3):
            target = folder / f"download-{number}.csv"
            try:
                got = app.download(grant, target)
            except ContractsError as error:
                clause = error.reasons[-1].rsplit("; ", 1)[-1].split("): ", 1)[-1]
                say(f"  download {number}: refused ({error.code}): {clause}")
                # the policy refuses, or its monitor has already ended the spent transfer
                ok &= number == 3 and error.code in ("policy_denied", "transfer_terminated")
                continue
            say(f"  download {number}: {got.bytes} bytes, sha256 {got.sha256[:16]}…")
            ok &= number < 3 and got.sha256 == expected
        with ManagementClient(bank.base_url, MANAGER_KEY, timeout_s=10) as manager:
            ended = poll(lambda: manager.transfer(grant.transfer_id).state == "TERMINATED")
            view = manager.transfer(grant.transfer_id)
        reason = (view.termination_reason or "").splitlines()[-1:] or ["?"]
        say(
            f"  the bureau's policy monitor ends the transfer ({view.termination_code}): "
            + reason[0].rsplit("; ", 1)[-1]
        )
        ok &= ended
        (duty,) = app.duties(grant.agreement_id)
        for number in (1, 2):
            (folder / f"download-{number}.csv").unlink()
        done = app.performed(duty["id"])
        say(f"  the bank deletes the data: duty {duty['action']} {done['state']}, receipt signed")
        provider_duties = f"{bureau_url}/management/v1/duties"
        headers = {"X-Api-Key": MANAGER_KEY}
        kept = poll(
            lambda: httpx.get(provider_duties, headers=headers, params={"role": "provider"})
            .json()["items"][0]["state"] == "fulfilled"
        )  # fmt: skip
        say(f"  the bureau holds the bank's signed deletion receipt: {kept}")
        ok &= kept
    return ok


KEY_ENTERPRISES = "urn:kexin:asset:key-enterprises"


def run_matching(
    say: Say, bureau: ConnectorSettings, bank: ConnectorSettings, folder: Path, size: int
) -> bool:
    """The bank learns which of its borrowers are on the bureau's list of key enterprises, and
    nothing else; the bureau learns only how many borrowers the bank brought. One run agreed:
    the second is refused."""
    firms, borrowers = folder / "key-enterprises.csv", folder / "borrowers.csv"
    write_csv(firms, Dataset.ENTERPRISES, generate(Dataset.ENTERPRISES, size, 1, malformed=0.01))
    listed = read_column(firms, "uscc", Kind.USCC).items
    rows = list(
        generate(Dataset.ENTERPRISES, size, 2, overlap_with=listed, overlap=0.2, malformed=0.01)
    )
    write_csv(borrowers, Dataset.ENTERPRISES, iter(rows))
    say(
        f"Matching: the bureau's {size:,} key enterprises against the bank's {size:,} borrowers"
        " (synthetic; 20 % overlap, 1 % malformed on each side), by private set intersection"
    )
    terms = {
        "@type": "Offer",
        "permission": [{"action": "use", "constraint": [
            {"leftOperand": "kexin:role", "operator": "hasPart",
             "rightOperand": "FinancialInstitution"},
            {"leftOperand": "purpose", "operator": "isA", "rightOperand": "credit-assessment"},
            {"leftOperand": "kexin:matchRuns", "operator": "lteq", "rightOperand": "1"},
            {"leftOperand": "kexin:matchSetSize", "operator": "gteq", "rightOperand": "100"},
            {"leftOperand": "kexin:matchSetSize", "operator": "lteq",
             "rightOperand": str(2 * size)},
            {"leftOperand": "kexin:matchOutput", "operator": "eq", "rightOperand": "intersection"},
        ]}],
    }  # fmt: skip
    with ManagementClient(bureau.base_url, MANAGER_KEY, timeout_s=600) as publish:
        publish.create_asset({
            "id": KEY_ENTERPRISES, "titleZh": "重点企业名单", "titleEn": "Key enterprises",
            "domain": "economic-development", "dataGrade": "important", "region": "440100",
            "dataAddress": {"type": "file", "path": str(firms),
                            "matching": {"column": "uscc", "kind": "uscc"}},
        })  # fmt: skip
        publish.create_policy("match-terms", terms)
        publish.create_contract_definition({
            "id": "key-enterprises", "accessPolicyId": "banks", "contractPolicyId": "match-terms",
            "assetSelector": {"assetIds": [KEY_ENTERPRISES]},
        })  # fmt: skip
    values = [row[0] for row in rows]
    started = time.monotonic()
    with ContractsClient(bank.base_url, MANAGER_KEY, timeout_s=1800) as app:
        found = app.match(
            bureau.participant_id, f"{bureau.base_url}/dsp", KEY_ENTERPRISES,
            "credit-assessment", kind="uscc", items=values,
        )  # fmt: skip
        took = time.monotonic() - started
        expected = set(listed) & set(read_column(borrowers, "uscc", Kind.USCC).items)
        say(
            f"  the bank learns {found['cardinality']:,} of its borrowers are on the list"
            f" ({found['invalidCount']:,} of its identifiers malformed, reported, not matched;"
            f" {took:.1f} s in all)"
        )
        say(
            f"  the bureau's list held {size - found['serverItems']:,} malformed identifiers,"
            " left out of its set"
        )
        try:
            app.match(
                bureau.participant_id, f"{bureau.base_url}/dsp", KEY_ENTERPRISES,
                "credit-assessment", kind="uscc", items=values,
            )  # fmt: skip
            again = "admitted"
        except ContractsError as error:
            again = f"refused ({error.code}): " + error.reasons[-1].rsplit("; ", 1)[-1]
        say(f"  a second run, beyond the one agreed: {again}")
    engine = create_engine(bureau.database_url)
    try:
        runs = [r for r in SqlAuditSink(engine).recent(500) if r.action == "matching run"]
    finally:
        engine.dispose()
    learned = (runs[0].reason or "") if runs else ""
    say(f"  the bureau's audit of the run: {learned}")
    return (
        found["cardinality"] == len(expected)
        and {m["item"] for m in found.get("matches", [])} == expected
        and again.startswith("refused (match_refused)")
        and len(runs) == 1
        and f"set size ({size - found['invalidCount']})" in learned
    )


def with_ledger(
    settings: ConnectorSettings,
    chain: Chain,
    operator_key: bytes,
    registry: str,
    ledger_port: int,
    ledger_id: str,
) -> ConnectorSettings:
    """``settings`` with its ledger on: its own chain account, funded on the demo chain and
    registered by the operator in the anchor contract."""
    account = new_account_key()
    chain.dev_fund(address_of(account))
    chain.registry(registry).register(operator_key, address_of(account), settings.participant_id)
    return settings.model_copy(
        update={
            "ledger_registry_address": registry,
            "ledger_chain_key": SecretStr(account.hex()),
            "ledger_url": f"http://127.0.0.1:{ledger_port}",
            "ledger_id": ledger_id,
            "ledger_interval_s": 0.2,
            "ledger_batch_max_age_s": 0.5,
        }
    )


def _unsettled(settings: ConnectorSettings) -> int:
    """What the connector's ledger has not pushed yet: audit rows not sequenced, events not
    in a closed batch, batches not taken by the ledger service."""
    from sqlalchemy import func
    from sqlmodel import col, select

    from connector.audit import AuditEvent
    from connector.ledger import LedgerPush
    from ledger import store

    engine = create_engine(settings.database_url)
    try:
        with Session(engine) as session:
            rows = session.exec(
                select(func.count()).select_from(AuditEvent)
                .where(col(AuditEvent.ledger_sequence).is_(None))
            ).one()  # fmt: skip
            open_events = store.unbatched(session, settings.participant_id)
            batches = session.exec(select(func.count()).select_from(store.BatchRecord)).one()
            push = session.get(LedgerPush, settings.participant_id)
            return rows + open_events + batches - (0 if push is None else push.next_batch)
    finally:
        engine.dispose()


def ledger_settled(
    say: Say, connectors: tuple[ConnectorSettings, ...], timeout_s: float = 60.0
) -> bool:
    """Wait until each connector's ledger has sequenced, batched, anchored and pushed all it
    recorded (its worker does so within a second or two), so that the regulator sees both
    sides whole."""
    deadline = time.monotonic() + timeout_s
    while (left := sum(_unsettled(c) for c in connectors)) and time.monotonic() < deadline:
        time.sleep(0.2)
    if left:
        say(f"  the connectors' ledgers still hold {left} unpushed rows, events or batches")
    return not left


async def regulate(
    say: Say,
    regulator: ConnectorSettings,
    authority: str,
    ledger_id: str,
    ledger_port: int,
    registry: AnchorRegistry,
    folder: Path,
) -> tuple[bool, ProofBundle | None]:
    """The regulator: its credential, the flows of both sides at the ledger, one event proved
    against the chain, the reconciliation; then a tampered copy of the ledger's store, which
    the verification names. Returns whether all of it held, and the proved event's bundle."""
    async with standalone(regulator) as (participant, client):
        status = await request_credentials(
            participant, client, authority,
            [CredentialType.MEMBERSHIP, CredentialType.REGULATOR],
        )  # fmt: skip
        say(f"Ledger: the regulator asks for Membership + RegulatorCredential: {status['status']}")
        base = f"http://127.0.0.1:{ledger_port}/ledger/v1"

        async def ask(path: str) -> httpx.Response:
            token = participant.sts.bearer_for(ledger_id, EVERY_SCOPE)
            return await client.get(f"{base}{path}", headers={"Authorization": f"Bearer {token}"})

        async def flows() -> list[dict[str, Any]]:
            answer = await ask("/flows?limit=500")
            found: list[dict[str, Any]] = answer.json().get("flows", [])
            return found

        every: list[dict[str, Any]] = []
        for _ in range(120):  # the connectors batch, anchor and push within a second or two
            every = await flows()
            kinds = {(f["participant"], f["event"]["detail"]["type"]) for f in every}
            if {
                (p, EventType.AGREEMENT_CONCLUDED) for p in {f["participant"] for f in every}
            } <= kinds and (
                len({f["participant"] for f in every}) == 2
                and any(kind == EventType.DATA_ACCESSED for _p, kind in kinds)
            ):
                break
            await asyncio.sleep(0.5)
        by_side: dict[str, int] = {}  # by name: the DIDs' order depends on their ports
        for flow in every:
            name = flow["participant"].rsplit(":", 1)[-1]
            by_side[name] = by_side.get(name, 0) + 1
        say(
            "  the ledger holds the signed, anchored events of both sides: "
            + ", ".join(f"{name} {count}" for name, count in sorted(by_side.items()))
        )
        access = next(
            (f for f in every if f["event"]["detail"]["type"] == EventType.DATA_ACCESSED), None
        )
        if access is None:
            say("  no data access reached the ledger")
            return False, None
        event_id = access["event"]["eventId"]
        served = await ask(f"/events/{event_id}/proof")
        bundle = ProofBundle.model_validate_json(served.content)
        try:
            check_bundle(bundle, registry)
            proved = "verified against the chain"
        except InvalidProofError as error:
            proved = f"NOT verified: {error}"
        say(
            f"  one download, {access['event']['detail']['bytesSent']:,} bytes to the bank:"
            f" event {event_id}, its inclusion proof and on-chain root {proved}"
        )
        answer = (await ask("/reconciliation?limit=100")).json()["flows"]
        clean = bool(answer) and all(flow["matches"] for flow in answer)
        say(
            f"  reconciliation of both sides' records: {len(answer)} flows,"
            f" {'all match' if clean else 'MISMATCHES'}"
        )
        for flow in answer:
            for mismatch in flow["mismatches"]:
                say(f"    {flow['providerPid']}: {mismatch['kind']}: {mismatch['reason']}")
    tampered = tamper_copy(folder / "ledger.db", event_id)
    engine = create_engine(f"sqlite:///{tampered}")
    try:
        with Session(engine) as session:
            findings = verify_archive(session, registry.chain)
    finally:
        engine.dispose()
    named = [f for f in findings if f.event_id == event_id]
    say(
        f"  a copy of the ledger's store with one digit added to that event's byte count: verify"
        f" names"
        f" {len(findings)} failure(s), " + (named[0].describe() if named else "not that event")
    )
    return proved.startswith("verified") and clean and bool(named), bundle


class LocalChain:
    """The demo's embedded chain: anvil on a fixed loopback port with its state in ``state``,
    started and stopped (and so restarted) by the demo; stopped for good on leaving."""

    def __init__(self, state: Path) -> None:
        self.state = state
        with bind() as sock:  # free a moment ago; anvil binds it itself
            self.port: int = sock.getsockname()[1]
        self._running = ExitStack()

    def start(self) -> str:
        url: str = self._running.enter_context(local_node(self.port, self.state))
        return url

    def stop(self) -> None:
        self._running.close()

    def __enter__(self) -> LocalChain:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def restart_chain(
    say: Say, node: LocalChain, registry: AnchorRegistry, bundle: ProofBundle | None
) -> bool:
    """Stop the chain node and start it again from its state file (on the same port, so that
    ``registry`` and the services reach it as before): the contract, the participants' anchors
    and the transaction of the proved event are all still there."""
    if bundle is None:
        say("  no proof to check against a restarted chain")
        return False
    try:
        before = registry.chain.block_number()
        node.stop()
        size = node.state.stat().st_size if node.state.exists() else 0
        node.start()
        after = registry.chain.block_number()
        check_bundle(bundle, registry)
    except (LocalNodeError, ChainError, InvalidProofError) as error:
        say(f"  the chain's restart: {error}")
        return False
    say(
        f"  the chain node stopped and started again from its state file ({size:,} bytes):"
        f" block {after} (was {before}); the download's proof is still verified against it"
    )
    return after >= before


def tamper_copy(database: Path, event_id: str) -> Path:
    """A copy of the ledger service's database with a digit added to an event's stored byte
    count (the original stays as it is)."""
    copy = database.with_name("ledger-tampered.db")
    source = sqlite3.connect(database)
    target = sqlite3.connect(copy)
    with target:
        source.backup(target)
    source.close()
    with target:
        (body,) = target.execute(
            "SELECT body FROM ledger_event WHERE event_id = ?", (event_id,)
        ).fetchone()
        changed = bytes(body).replace(b'"bytesSent":', b'"bytesSent":1', 1)
        target.execute("UPDATE ledger_event SET body = ? WHERE event_id = ?", (changed, event_id))
    target.close()
    return copy
