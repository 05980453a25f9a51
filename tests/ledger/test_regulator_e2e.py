"""The regulator's service end to end on loopback: a real anvil, the authority, a city bureau's
and a regulator's connectors and the ledger service as real uvicorn servers. The bureau's
batches, signed with its DID key and anchored from its chain account, are pushed to the ledger;
the regulator (DCP, ``RegulatorCredential``) queries the flows and gets a proof bundle, which
``dataspace ledger check-proof`` verifies against anvil alone; the bureau, without that
credential, sees only its own events; ``dataspace ledger verify`` passes, then names an event
whose stored bytes were changed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from sqlmodel import Session
from typer.testing import CliRunner

from broker.app import create_app as create_broker
from connector.app import create_app as create_connector
from connector.participant import standalone
from connector.settings import ConnectorSettings
from dataspace.cli import app as cli
from dataspace.servers import bind, serve_in_thread
from identity.credentials import CredentialType
from ledger import store
from ledger.app import create_app as create_ledger
from ledger.chain import Chain, address_of, new_account_key
from ledger.events import EventType
from ledger.settings import LedgerSettings
from storage.engine import create_engine
from tests.e2e.space import call, onboard
from tests.ledger import nodetools
from tests.ledger.factories import T0
from tests.ledger.pushes import Operator, Side, did_key_participant
from tests.loopback import free_port
from tests.participants import (
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
class World:
    ledger: LedgerSettings
    ledger_url: str
    bureau: ConnectorSettings
    regulator: ConnectorSettings
    chain_url: str
    sides: dict[str, Side]
    operator: Operator
    folder: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    folder = tmp_path_factory.mktemp("regulator")
    with ExitStack() as stack:
        chain_url = stack.enter_context(nodetools.anvil())
        operator = Operator.deploy(Chain.connect(chain_url, timeout_s=10))
        authority_sock, bureau_sock, regulator_sock, ledger_sock = bind(), bind(), bind(), bind()
        authority = did_for(authority_sock, "authority")
        bureau = connector_settings(bureau_sock, folder, "bureau", authority)
        regulator = connector_settings(regulator_sock, folder, "regulator", authority)
        allow = {
            bureau.participant_id: {"types": ["MembershipCredential"], "organisation": BUREAU_ORG},
            regulator.participant_id: {
                "types": ["MembershipCredential", "RegulatorCredential"],
                "organisation": REGULATOR_ORG,
            },
        }
        ledger = LedgerSettings(
            ledger_id=did_for(ledger_sock, "ledger"),
            public_url=url_for(ledger_sock),
            database_url=f"sqlite:///{folder / 'regulator-ledger.db'}",
            key_passphrase=PASSPHRASE,  # type: ignore[arg-type]
            key_scrypt_log2_n=15,
            trusted_issuers={kind: [authority] for kind in CredentialType},
            did_web_allow_http=True,
            outbound_allowed_networks=LOOPBACK,
            chain_url=chain_url,
            registry_address=operator.registry.address,
            status_list_ttl_s=1,
        )
        stack.enter_context(
            serve_in_thread(create_broker(authority_settings(authority_sock, folder, allow)), authority_sock)
        )  # fmt: skip
        stack.enter_context(serve_in_thread(create_connector(bureau), bureau_sock))
        stack.enter_context(serve_in_thread(create_connector(regulator), regulator_sock))
        ledger_url = stack.enter_context(serve_in_thread(create_ledger(ledger), ledger_sock))
        for settings, types in (
            (bureau, [CredentialType.MEMBERSHIP]),
            (regulator, [CredentialType.MEMBERSHIP, CredentialType.REGULATOR]),
        ):
            status = asyncio.run(onboard(settings, authority, types))
            assert status["status"] == "ISSUED", status

        async def bureau_key() -> Any:
            async with standalone(bureau) as (participant, _client):
                return participant.keyring.current

        sides = {
            "bureau": Side(folder, bureau.participant_id, asyncio.run(bureau_key()), operator,
                           name="bureau"),
            "other": Side(folder, *did_key_participant(), operator, name="other"),
        }  # fmt: skip
        sides["bureau"].record(6, purpose="credit-assessment")
        sides["bureau"].record(3, purpose="statistics", asset_id="population")
        sides["other"].record(5)
        for side in sides.values():
            side.seal()
            side.anchor()
            for push in side.pushes():
                answer = httpx.post(f"{ledger_url}/ledger/v1/batches", json=push, timeout=30)
                assert answer.status_code == 201, answer.text
        yield World(ledger, ledger_url, bureau, regulator, chain_url, sides, operator, folder)
        for side in sides.values():
            side.close()


def ask(world: World, caller: ConnectorSettings, path: str, **params: Any) -> httpx.Response:
    query = str(httpx.QueryParams(params))
    url = f"{world.ledger_url}{path}" + (f"?{query}" if query else "")
    return asyncio.run(call(caller, world.ledger.ledger_id, url))


def flows(world: World, caller: ConnectorSettings, **params: Any) -> list[dict[str, Any]]:
    response = ask(world, caller, "/ledger/v1/flows", **params)
    assert response.status_code == 200, response.text
    result: list[dict[str, Any]] = response.json()["flows"]
    return result


def test_a_regulator_sees_every_participants_flows_with_filters(world: World) -> None:
    bureau, other = world.sides["bureau"].did, world.sides["other"].did
    every = flows(world, world.regulator, limit=500)
    assert len(every) == 14
    assert {f["participant"] for f in every} == {bureau, other}
    assert len(flows(world, world.regulator, participant=bureau)) == 9
    assert len(flows(world, world.regulator, purpose="statistics")) == 3
    assert len(flows(world, world.regulator, asset="population")) == 3
    assert len(flows(world, world.regulator, type=EventType.DATA_ACCESSED.value)) == 14
    assert flows(world, world.regulator, type=EventType.REFUSED.value) == []
    assert len(flows(world, world.regulator, counterparty="did:web:bank.example.cn")) == 14
    assert len(flows(world, world.regulator, domain="finance", participant=other)) == 5
    window = flows(
        world, world.regulator, participant=bureau,
        **{"from": (T0.replace(second=2)).isoformat(), "to": T0.replace(second=5).isoformat()},
    )  # fmt: skip
    assert [f["sequence"] for f in window] == [2, 3, 4]
    beijing = timezone(timedelta(hours=8))  # the same instants in another offset
    same = flows(
        world, world.regulator, participant=bureau,
        **{"from": T0.replace(second=2).astimezone(beijing).isoformat(),
           "to": T0.replace(second=5).astimezone(beijing).isoformat()},
    )  # fmt: skip
    assert [f["sequence"] for f in same] == [2, 3, 4]


def test_flows_are_paginated(world: World) -> None:
    response = ask(world, world.regulator, "/ledger/v1/flows", limit=5, offset=10)
    assert response.status_code == 200, response.text
    page = response.json()
    assert (len(page["flows"]), page["nextOffset"]) == (4, None)
    first = ask(world, world.regulator, "/ledger/v1/flows", limit=5).json()
    assert first["nextOffset"] == 5


def test_a_participant_without_a_regulator_credential_sees_only_its_own(world: World) -> None:
    own = flows(world, world.bureau)
    assert len(own) == 9
    assert {f["participant"] for f in own} == {world.bureau.participant_id}
    other = world.sides["other"].did
    refused = ask(world, world.bureau, "/ledger/v1/flows", participant=other)
    assert refused.status_code == 403
    assert refused.json()["reason"] == "not_a_regulator"
    foreign = flows(world, world.regulator, participant=other)[0]["event"]["eventId"]
    assert ask(world, world.bureau, f"/ledger/v1/events/{foreign}/proof").status_code == 404


def prove_env(world: World) -> dict[str, str]:
    return {
        "LEDGER_LEDGER_ID": world.ledger.ledger_id,
        "LEDGER_KEY_PASSPHRASE": PASSPHRASE,
        "LEDGER_DATABASE_URL": world.ledger.database_url,
        "LEDGER_CHAIN_URL": world.chain_url,
    }


def test_a_proof_from_the_service_verifies_against_the_chain_alone(
    world: World, tmp_path: Path
) -> None:
    event = flows(world, world.regulator, participant=world.bureau.participant_id)[7]["event"]
    served = ask(world, world.regulator, f"/ledger/v1/events/{event['eventId']}/proof")
    assert served.status_code == 200, served.text
    bundle = served.json()
    assert bundle["event"] == event
    runner = CliRunner()
    proved = runner.invoke(cli, ["ledger", "prove", event["eventId"]], env=prove_env(world))
    assert proved.exit_code == 0, proved.output
    assert json.loads(proved.stdout) == bundle
    file = tmp_path / "bundle.json"
    file.write_text(proved.stdout)
    checked = runner.invoke(cli, ["ledger", "check-proof", str(file), "--chain", world.chain_url])
    assert checked.exit_code == 0, checked.output
    assert checked.stdout.startswith(f"valid: event {event['eventId']}")

    bundle["event"]["detail"]["rowsSent"] += 1
    file.write_text(json.dumps(bundle))
    forged = runner.invoke(cli, ["ledger", "check-proof", str(file), "--chain", world.chain_url])
    assert forged.exit_code == 1
    assert "invalid: the inclusion proof does not lead from the event to the root" in forged.output


def test_check_proof_refuses_what_is_not_a_bundle(world: World, tmp_path: Path) -> None:
    runner = CliRunner()
    file = tmp_path / "bundle.json"
    file.write_text("{}")
    result = runner.invoke(cli, ["ledger", "check-proof", str(file), "--chain", world.chain_url])
    assert result.exit_code == 1
    assert "invalid: not a proof bundle" in result.output
    missing = runner.invoke(cli, ["ledger", "check-proof", str(tmp_path / "none.json"), "--chain", world.chain_url])  # fmt: skip
    assert missing.exit_code == 2


def test_prove_names_an_unknown_event(world: World) -> None:
    result = CliRunner().invoke(cli, ["ledger", "prove", "0" * 36], env=prove_env(world))
    assert result.exit_code == 1
    assert "no anchored event" in result.output


def test_verify_passes_then_names_a_changed_event(world: World) -> None:
    runner = CliRunner()
    clean = runner.invoke(cli, ["ledger", "verify"], env=prove_env(world))
    assert clean.exit_code == 0, clean.output
    did = world.sides["other"].did
    engine = create_engine(world.ledger.database_url)
    try:
        with Session(engine) as session:
            row = session.get(store.EventRecord, (did, 3))
            assert row is not None
            original, event_id = row.body, row.event_id
            body = row.body.replace(b'"rowsSent":103', b'"rowsSent":104')
            assert body != original
            session.execute(
                update(store.EventRecord)
                .where(store.EventRecord.participant == did)  # type: ignore[arg-type]
                .where(store.EventRecord.sequence == 3)  # type: ignore[arg-type]
                .values(body=body)
            )
            session.commit()
        failed = runner.invoke(cli, ["ledger", "verify"], env=prove_env(world))
        assert failed.exit_code == 1
        lines = [line for line in failed.stdout.splitlines() if line.startswith("FAIL")]
        assert lines == [f"FAIL {did} event {event_id} sequence 3: tampered: the event's bytes do not give its stored hash"]  # fmt: skip
    finally:
        with Session(engine) as session:
            session.execute(
                update(store.EventRecord)
                .where(store.EventRecord.participant == did)  # type: ignore[arg-type]
                .where(store.EventRecord.sequence == 3)  # type: ignore[arg-type]
                .values(body=original)
            )
            session.commit()
        engine.dispose()


def test_the_regulator_reconciles_both_sides_of_each_flow(world: World) -> None:
    bureau, other = world.sides["bureau"].did, world.sides["other"].did
    response = ask(world, world.regulator, "/ledger/v1/reconciliation", limit=100)
    assert response.status_code == 200, response.text
    found = {f["providerPid"]: f for f in response.json()["flows"]}
    assert len(found) == 9
    # Events 0..4 of both sides carry the same process ids and the same counts: they match.
    for n in range(5):
        assert found[f"urn:uuid:provider-{n}"]["matches"], found[f"urn:uuid:provider-{n}"]
        assert {s["participant"] for s in found[f"urn:uuid:provider-{n}"]["sides"]} == {
            bureau,
            other,
        }
    for n in range(5, 9):
        assert found[f"urn:uuid:provider-{n}"]["mismatches"] == [
            {
                "kind": "one_sided",
                "reason": f"{bureau} logged it, did:web:bank.example.cn never did",
            }
        ]
    refused = ask(world, world.bureau, "/ledger/v1/reconciliation")
    assert refused.status_code == 403
    assert refused.json()["reason"] == "not_a_regulator"


def test_reports_for_the_regulator_and_for_the_participant_itself(world: World) -> None:
    bureau, other = world.sides["bureau"].did, world.sides["other"].did
    response = ask(world, world.regulator, "/ledger/v1/reports", participant=bureau)
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["events"] == 9
    assert {(p["asset"], p["purpose"], p["accesses"]) for p in report["provided"]} == {
        ("firm-list", "credit-assessment", 6),
        ("population", "statistics", 3),
    }
    assert report["personalInformation"]["persons"] == sum(1000 + n for n in range(9))
    as_csv = ask(world, world.regulator, "/ledger/v1/reports", participant=bureau, format="csv")
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert as_csv.text.splitlines()[0].startswith("section,counterparty,asset")
    own = ask(world, world.bureau, "/ledger/v1/reports", participant=bureau)
    assert own.json() == report
    beijing = timezone(timedelta(hours=8))
    period = {"from": T0.replace(second=2).astimezone(beijing).isoformat(),
              "to": T0.replace(second=5).astimezone(beijing).isoformat()}  # fmt: skip
    three = ask(world, world.regulator, "/ledger/v1/reports", participant=bureau, **period)
    assert three.json()["events"] == 3
    refused = ask(world, world.bureau, "/ledger/v1/reports", participant=other)
    assert refused.status_code == 403


def test_without_a_chain_node_nothing_is_called_valid(world: World, tmp_path: Path) -> None:
    runner = CliRunner()
    event = flows(world, world.regulator)[0]["event"]
    proved = runner.invoke(cli, ["ledger", "prove", event["eventId"]], env=prove_env(world))
    file = tmp_path / "bundle.json"
    file.write_text(proved.stdout)
    down = f"http://127.0.0.1:{free_port()}"
    checked = runner.invoke(cli, ["ledger", "check-proof", str(file), "--chain", down])
    assert checked.exit_code == 1
    assert checked.output.startswith(f"error: cannot check against {down}")
    verified = runner.invoke(
        cli, ["ledger", "verify"], env=prove_env(world) | {"LEDGER_CHAIN_URL": down}
    )
    assert verified.exit_code == 1
    assert verified.output.startswith(f"error: cannot check against {down}")


def test_the_same_batch_pushed_twice_at_once_is_stored_once(world: World) -> None:
    side = Side(world.folder, *did_key_participant(), world.operator, name="racer")
    side.record(4)
    side.seal()
    side.anchor()
    [push] = side.pushes()

    async def both() -> tuple[httpx.Response, httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as client:
            url = f"{world.ledger_url}/ledger/v1/batches"
            return await asyncio.gather(client.post(url, json=push), client.post(url, json=push))

    answers = asyncio.run(both())
    assert sorted(a.status_code for a in answers) == [200, 201], [a.text for a in answers]
    assert answers[0].json() | {"replayed": False} == answers[1].json() | {"replayed": False}
    assert len(flows(world, world.regulator, participant=side.did)) == 4
    side.close()


def test_a_proof_follows_its_anchor_through_a_reorganisation(world: World, tmp_path: Path) -> None:
    """Anvil goes back to a block before the anchor (``evm_revert``, what a reorganisation
    does to it): the service answers 409 ``not_anchored`` rather than a bundle the chain no
    longer backs; once the participant has anchored the batch again, in another block, the
    bundle names that block and verifies against the chain alone. (Last in this module: the
    chain is reverted.)"""
    side = Side(world.folder, *did_key_participant(), world.operator, name="reorg")
    side.record(4)
    side.seal()
    provider = world.operator.chain.w3.provider
    snapshot = provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    side.anchor()
    [push] = side.pushes()
    accepted = httpx.post(f"{world.ledger_url}/ledger/v1/batches", json=push, timeout=30)
    assert accepted.status_code == 201, accepted.text
    event = flows(world, world.regulator, participant=side.did)[0]["event"]
    path = f"/ledger/v1/events/{event['eventId']}/proof"
    before = ask(world, world.regulator, path)
    assert before.status_code == 200, before.text

    provider.make_request("evm_revert", [snapshot])  # type: ignore[arg-type]
    lost = ask(world, world.regulator, path)
    assert lost.status_code == 409, lost.text
    assert lost.json()["reason"] == "not_anchored"

    world.operator.chain.dev_fund(address_of(new_account_key()))  # the new branch moves on
    assert side.recorder.recheck(world.operator.registry, address_of(side.account)) == [0]
    side.anchor()
    # the regulator's own re-check follows the anchor too: a bundle printed from its database
    # then names the new block (before, `prove` printed one `check-proof` found invalid)
    runner = CliRunner()
    verified = runner.invoke(cli, ["ledger", "verify"], env=prove_env(world))
    assert verified.exit_code == 0, verified.output
    [line] = [line for line in verified.stdout.splitlines() if line.startswith("moved ")]
    assert line.startswith(f"moved {side.did} batch 0: anchored again in block ")
    proved = runner.invoke(cli, ["ledger", "prove", event["eventId"]], env=prove_env(world))
    assert proved.exit_code == 0, proved.output
    printed = tmp_path / "printed.json"
    printed.write_text(proved.stdout)
    checked = runner.invoke(
        cli, ["ledger", "check-proof", str(printed), "--chain", world.chain_url]
    )
    assert checked.exit_code == 0, checked.output
    after = ask(world, world.regulator, path)
    assert after.status_code == 200, after.text
    moved = after.json()["anchor"]
    assert moved["blockNumber"] != before.json()["anchor"]["blockNumber"]
    assert moved["transaction"] != before.json()["anchor"]["transaction"]
    file = tmp_path / "bundle.json"
    file.write_text(after.text)
    checked = CliRunner().invoke(
        cli, ["ledger", "check-proof", str(file), "--chain", world.chain_url]
    )
    assert checked.exit_code == 0, checked.output
    side.close()
