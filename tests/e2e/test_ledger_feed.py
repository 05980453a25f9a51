"""Connectors feed the regulator's ledger: a negotiation and a transfer between the bureau and
the bank (real servers on loopback) reach the ledger service as both sides' signed batches,
anchored from each participant's own account, on web3's in-process chain and on anvil; the
regulator (DCP, ``RegulatorCredential``) sees the flow from both sides, an event's proof
verifies against the chain, and the reconciliation of both sides is clean."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlmodel import Session, col, func, select

from broker.app import create_app as create_broker
from connector.app import create_app as create_connector
from connector.audit import AuditEvent
from connector.ledger import LedgerPush
from connector.settings import ConnectorSettings
from dataspace.servers import bind, serve_in_thread
from identity.credentials import CredentialType
from ledger import store
from ledger.app import create_app as create_ledger
from ledger.chain import Chain, address_of, new_account_key
from ledger.events import EventType
from ledger.messages import ProofBundle
from ledger.proofs import check_bundle
from ledger.settings import LedgerSettings
from storage.engine import create_engine
from tests.e2e.dataplane_helpers import (
    PURPOSE,
    bank_client,
    data_file,
    grant_for,
    offer_data,
    terms,
)
from tests.e2e.space import Space, call, onboard
from tests.e2e.test_negotiation import wait_for
from tests.ledger import nodetools
from tests.ledger.pushes import Operator
from tests.participants import (
    BANK_ORG,
    BUREAU_ORG,
    LOOPBACK,
    PASSPHRASE,
    authority_settings,
    connector_settings,
    did_for,
    url_for,
)

REGULATOR_ORG = {**BUREAU_ORG, "name": "广东省数据监管局"}


@dataclass
class Fed:
    space: Space
    regulator: ConnectorSettings
    ledger: LedgerSettings
    ledger_url: str
    operator: Operator


def with_ledger(
    settings: ConnectorSettings, operator: Operator, ledger: LedgerSettings, ledger_url: str
) -> ConnectorSettings:
    """``settings`` with its ledger on: its own chain account, registered by the operator."""
    account = new_account_key()
    operator.chain.dev_fund(address_of(account))
    operator.registry.register(operator.key, address_of(account), settings.participant_id)
    return settings.model_copy(
        update={
            "ledger_registry_address": operator.registry.address,
            "ledger_chain_key": SecretStr(account.hex()),
            "ledger_url": ledger_url,
            "ledger_id": ledger.ledger_id,
            "ledger_interval_s": 0.1,
            "ledger_batch_max_age_s": 0.3,
        }
    )


@pytest.fixture(params=["in-process", "anvil"])
def chain(request: pytest.FixtureRequest) -> Iterator[Chain]:
    """web3's in-process chain (shared by the servers' threads), or a real anvil node."""
    if request.param == "in-process":
        yield Chain.in_process()
        return
    with nodetools.anvil() as url:
        yield Chain.connect(url, timeout_s=10)


@pytest.fixture
def fed(tmp_path: Path, chain: Chain) -> Iterator[Fed]:
    operator = Operator.deploy(chain)
    socks = {name: bind() for name in ("authority", "bureau", "bank", "regulator", "ledger")}
    authority = did_for(socks["authority"], "authority")
    ledger = LedgerSettings(
        ledger_id=did_for(socks["ledger"], "ledger"),
        public_url=url_for(socks["ledger"]),
        database_url=f"sqlite:///{tmp_path / 'regulator-ledger.db'}",
        key_passphrase=PASSPHRASE,  # type: ignore[arg-type]
        key_scrypt_log2_n=15,
        trusted_issuers={kind: [authority] for kind in CredentialType},
        did_web_allow_http=True,
        outbound_allowed_networks=LOOPBACK,
        registry_address=operator.registry.address,
        status_list_ttl_s=1,
    )
    ledger_url = url_for(socks["ledger"])
    bureau = with_ledger(
        connector_settings(socks["bureau"], tmp_path, "bureau", authority),
        operator, ledger, ledger_url,
    )  # fmt: skip
    bank = with_ledger(
        connector_settings(socks["bank"], tmp_path, "bank", authority),
        operator, ledger, ledger_url,
    )  # fmt: skip
    regulator = connector_settings(socks["regulator"], tmp_path, "regulator", authority)
    allow = {
        bureau.participant_id: {"types": ["MembershipCredential", "PublicDataHolderCredential"], "organisation": BUREAU_ORG},
        bank.participant_id: {"types": ["MembershipCredential", "FinancialInstitutionCredential"], "organisation": BANK_ORG},
        regulator.participant_id: {"types": ["MembershipCredential", "RegulatorCredential"], "organisation": REGULATOR_ORG},
    }  # fmt: skip
    with ExitStack() as stack:
        authority_url = stack.enter_context(
            serve_in_thread(create_broker(authority_settings(socks["authority"], tmp_path, allow)), socks["authority"])
        )  # fmt: skip
        stack.enter_context(serve_in_thread(create_ledger(ledger, chain=chain), socks["ledger"]))
        stack.enter_context(serve_in_thread(create_connector(bureau, chain=chain), socks["bureau"]))
        bank_url = stack.enter_context(
            serve_in_thread(create_connector(bank, chain=chain), socks["bank"])
        )
        stack.enter_context(serve_in_thread(create_connector(regulator), socks["regulator"]))
        status = asyncio.run(
            onboard(regulator, authority, [CredentialType.MEMBERSHIP, CredentialType.REGULATOR])
        )
        assert status["status"] == "ISSUED", status
        space = Space(authority, authority_url, bureau, bank, bank_url)
        yield Fed(space, regulator, ledger, ledger_url, operator)


def ask(fed: Fed, path: str, **params: Any) -> httpx.Response:
    query = str(httpx.QueryParams(params))
    url = f"{fed.ledger_url}{path}" + (f"?{query}" if query else "")
    return asyncio.run(call(fed.regulator, fed.ledger.ledger_id, url))


def flows(fed: Fed, **params: Any) -> list[dict[str, Any]]:
    response = ask(fed, "/ledger/v1/flows", limit=500, **params)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["flows"]
    return found


def settled(settings: ConnectorSettings) -> tuple[int, int, int, int]:
    """Unsequenced audit rows, stored batches, unanchored batches, and the next batch to push."""
    engine = create_engine(settings.database_url)
    try:
        with Session(engine) as session:
            unsequenced = session.exec(
                select(func.count())
                .select_from(AuditEvent)
                .where(col(AuditEvent.ledger_sequence).is_(None))
            ).one()
            batches = session.exec(
                select(func.count())
                .select_from(store.BatchRecord)
                .where(store.BatchRecord.participant == settings.participant_id)
            ).one()
            unanchored = len(store.unanchored(session, settings.participant_id))
            push = session.get(LedgerPush, settings.participant_id)
            return unsequenced, batches, unanchored, 0 if push is None else push.next_batch
    finally:
        engine.dispose()


def test_a_flow_reaches_the_regulator_from_both_sides_provable_and_reconciled(
    fed: Fed, tmp_path: Path
) -> None:
    space = fed.space
    source, _digest = data_file(tmp_path, 200_000)
    asset = offer_data(space, {"type": "file", "path": str(source)}, terms())
    grant = grant_for(space, asset)
    with bank_client(space) as client:
        got = client.download(grant, tmp_path / "got.bin")
    assert got.bytes == source.stat().st_size
    bureau, bank = space.bureau.participant_id, space.bank.participant_id

    def seen() -> set[tuple[str, str, str | None]]:
        return {
            (f["participant"], f["event"]["detail"]["type"], f["event"]["detail"].get("toState"))
            for f in flows(fed)
        }

    def pushed() -> bool:
        negotiated, transferred = (
            EventType.NEGOTIATION_STATE_CHANGED,
            EventType.TRANSFER_STATE_CHANGED,
        )
        return {
            (bureau, negotiated, "FINALIZED"), (bank, negotiated, "FINALIZED"),
            (bureau, transferred, "STARTED"), (bank, transferred, "STARTED"),
            (bureau, EventType.DATA_ACCESSED, None), (bank, EventType.DATA_ACCESSED, None),
            (bureau, EventType.AGREEMENT_CONCLUDED, None), (bank, EventType.AGREEMENT_CONCLUDED, None),
        } <= seen()  # fmt: skip

    wait_for(
        pushed, timeout_s=60, seen=lambda: [seen(), settled(space.bureau), settled(space.bank)]
    )
    every = flows(fed)
    negotiation = {
        f["participant"]: f["event"]["detail"]["toState"]
        for f in every
        if f["event"]["detail"]["type"] == EventType.NEGOTIATION_STATE_CHANGED
        and f["event"]["detail"]["toState"] == "FINALIZED"
    }
    assert negotiation == {bureau: "FINALIZED", bank: "FINALIZED"}
    access = next(
        f for f in every
        if f["event"]["detail"]["type"] == EventType.DATA_ACCESSED and f["participant"] == bureau
    )  # fmt: skip
    assert access["event"]["counterparty"] == bank
    assert access["event"]["detail"]["bytesSent"] == source.stat().st_size
    assert access["event"]["detail"]["outcome"] == "complete"
    # the regulator's fields, from each side's own records of the flow
    assert (access["event"]["assetId"], access["event"]["agreementId"]) == (
        asset, grant.agreement_id)  # fmt: skip
    assert (access["event"]["purpose"], access["event"]["dataGrade"]) == (PURPOSE, "general")
    banks = next(
        f["event"] for f in every
        if f["participant"] == bank and f["event"]["detail"].get("toState") == "FINALIZED"
    )  # fmt: skip
    assert (banks["assetId"], banks["purpose"]) == (asset, PURPOSE)
    assert any(
        f["participant"] == bureau and f["event"]["detail"] == {
            "type": "asset.offered", "assetId": asset,
            "descriptionHash": f["event"]["detail"].get("descriptionHash"),
        } and len(f["event"]["detail"]["descriptionHash"]) == 64
        for f in every
    )  # fmt: skip
    started = {
        (f["participant"], f["event"]["providerPid"], f["event"]["consumerPid"])
        for f in every
        if f["event"]["detail"]["type"] == EventType.TRANSFER_STATE_CHANGED
        and f["event"]["detail"]["toState"] == "STARTED"
    }
    assert {who for who, _p, _c in started} == {bureau, bank}
    assert len({(p, c) for _who, p, c in started}) == 1  # the same pair of process ids

    # a third party checks one event with its proof bundle and the chain alone
    event_id = access["event"]["eventId"]
    served = ask(fed, f"/ledger/v1/events/{event_id}/proof")
    assert served.status_code == 200, served.text
    bundle = ProofBundle.model_validate_json(served.content)
    assert bundle.event == access["event"]
    check_bundle(bundle, fed.operator.registry)

    reconciled = ask(fed, "/ledger/v1/reconciliation", limit=100)
    assert reconciled.status_code == 200, reconciled.text
    found = reconciled.json()["flows"]
    assert len(found) >= 2  # the negotiation and the transfer
    for flow in found:
        assert flow["matches"], flow  # the same agreement hash, transfer state, bytes
        assert len({side["agreementHash"] for side in flow["sides"]}) == 1
        assert {side["participant"] for side in flow["sides"]} == {bureau, bank}
    assert any(flow["sides"][0]["agreementHash"] for flow in found)  # the negotiation's
    # the transfer's flow: what the bureau's data plane sent beside what the bank's SDK
    # reported it received
    [moved] = [flow for flow in found if any(side["bytes"] for side in flow["sides"])]
    assert [side["bytes"] for side in moved["sides"]] == [source.stat().st_size] * 2

    # each side anchored each batch once, and pushed the anchored ones
    for settings in (space.bureau, space.bank):
        _unsequenced, batches, _unanchored, next_push = settled(settings)
        assert settings.ledger_chain_key is not None
        account = address_of(bytes.fromhex(settings.ledger_chain_key.get_secret_value()))
        assert 1 <= next_push <= fed.operator.registry.anchor_count(account) <= batches
