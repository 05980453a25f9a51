"""The connector's ledger sequencer: committed audit rows become the participant's chained
ledger events, typed by what they record, in the order they are found committed (a lower id
committed later is sequenced after, not skipped); batches are anchored once even when the chain
was down or the connector restarted in between."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from connector.app import create_app
from connector.audit import AuditEvent, AuditRecord, Outcome, SqlAuditSink
from connector.database import migrations as connector_migrations
from connector.ledger import (
    NOT_AN_EVENT,
    Anchoring,
    LedgerPush,
    LedgerWorker,
    PushError,
    Pushing,
    sequence,
)
from connector.participant import migrate
from dataspace.servers import serve_in_thread
from identity.documents import did_key_document
from ledger import store
from ledger.app import create_app as create_ledger
from ledger.chain import Chain, ChainError, address_of, new_account_key
from ledger.events import EventType
from ledger.recorder import Recorder
from ledger.settings import LedgerSettings
from storage.engine import create_engine
from storage.migrate import upgrade
from tests.connector.test_app import make_settings
from tests.e2e.test_negotiation import wait_for
from tests.ledger.pushes import PASSPHRASE, Clock, Operator, did_key_participant
from tests.loopback import free_port

BANK = "did:web:bank.example"
T = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def migrated(engine: Engine) -> Engine:
    migrate(engine)
    return engine


@pytest.fixture
def recorder(migrated: Engine) -> Recorder:
    did, key = did_key_participant()
    return Recorder(
        migrated, did, key.key_id, key.private_key, max_events=3, max_age_s=60.0, clock=Clock()
    )


def record(engine: Engine, actor: str, **fields: object) -> None:
    values: dict[str, object] = {"outcome": Outcome.ACCEPTED, "occurred_at": T} | fields
    SqlAuditSink(engine).record(AuditRecord(actor=actor, **values))  # type: ignore[arg-type]


def stored_events(engine: Engine, participant: str) -> list[dict[str, object]]:
    with Session(engine) as session:
        return [json.loads(body) for body in store.events(session, participant, 0, 10**9)]


def test_each_audit_action_becomes_its_typed_event(migrated: Engine, recorder: Recorder) -> None:
    me = recorder.participant
    record(
        migrated,
        me,
        action="ContractRequestMessage",
        counterparty=BANK,
        subject="n1",
        process="negotiation",
        to_state="REQUESTED",
        provider_pid="p1",
        consumer_pid="c1",
    )
    record(migrated, me, action="GET /management/v1/assets", reason="200")
    record(
        migrated,
        me,
        action="terminate",
        counterparty=BANK,
        subject="n1",
        process="negotiation",
        from_state="REQUESTED",
        to_state="TERMINATED",
        termination_code="policy_denied",
        outcome=Outcome.REFUSED,
        reason="policy_denied: purpose not allowed",
    )
    record(
        migrated,
        me,
        action="data access",
        counterparty=BANK,
        subject="t1",
        bytes_sent=1200,
        rows_sent=10,
        access_outcome="completed",
        reason="completed",
    )
    record(
        migrated,
        me,
        action="POST /dsp/transfers/request",
        outcome=Outcome.REFUSED,
        reason="invalid_token: expired",
    )
    record(
        migrated,
        me,
        action="duty violated",
        counterparty=BANK,
        subject="d1",
        outcome=Outcome.REFUSED,
        duty_action="delete",
        reason="delete was due",
    )
    record(
        migrated,
        me,
        action="duty receipt",
        counterparty=BANK,
        subject="d2",
        duty_action="delete",
        evidence_hash="ab" * 32,
        reason="signed receipt recorded",
    )
    assert sequence(migrated, recorder) == 7  # fmt: skip

    events = stored_events(migrated, me)
    assert [e["detail"]["type"] for e in events] == [  # type: ignore[index]
        EventType.NEGOTIATION_STATE_CHANGED, EventType.NEGOTIATION_STATE_CHANGED,
        EventType.DATA_ACCESSED, EventType.REFUSED, EventType.DUTY_VIOLATED,
        EventType.DUTY_FULFILLED,
    ]  # fmt: skip
    first, terminated, access, refused, violated, fulfilled = events
    assert first["providerPid"] == "p1"
    assert first["consumerPid"] == "c1"
    assert first["counterparty"] == BANK
    assert first["detail"] == {"type": "negotiation.state-changed", "toState": "REQUESTED",
                               "reasons": []}  # fmt: skip
    assert terminated["detail"] == {
        "type": "negotiation.state-changed", "fromState": "REQUESTED", "toState": "TERMINATED",
        "terminationCode": "policy_denied", "reasons": ["policy_denied: purpose not allowed"],
    }  # fmt: skip
    assert access["detail"] == {"type": "dataplane.access", "transferId": "t1",
                                "bytesSent": 1200, "rowsSent": 10, "outcome": "complete"}  # fmt: skip
    assert refused["detail"] == {"type": "refusal", "scope": "transfer",
                                 "reasons": ["invalid_token: expired"]}  # fmt: skip
    assert violated["detail"]["action"] == "delete"  # type: ignore[index]
    assert fulfilled["detail"]["receiptHash"] == "ab" * 32  # type: ignore[index]

    with Session(migrated) as session:
        marks = session.exec(select(AuditEvent.ledger_sequence).order_by(col(AuditEvent.id))).all()
        assert marks == [0, NOT_AN_EVENT, 1, 2, 3, 4, 5]
        assert store.verify(session, me).ok
    assert sequence(migrated, recorder) == 0  # nothing is sequenced twice


def test_a_finalized_negotiation_also_concludes_its_agreement(
    migrated: Engine, recorder: Recorder
) -> None:
    record(migrated, recorder.participant, action="ContractNegotiationEventMessage:FINALIZED",
           counterparty=BANK, subject="n1", process="negotiation", from_state="VERIFIED",
           to_state="FINALIZED", provider_pid="p1", consumer_pid="c1", agreement_id="a1",
           agreement_hash="01" * 32, policy_hash="02" * 32)  # fmt: skip
    assert sequence(migrated, recorder) == 1
    moved, concluded = stored_events(migrated, recorder.participant)
    assert moved["detail"]["toState"] == "FINALIZED"  # type: ignore[index]
    assert concluded["detail"] == {"type": "agreement.concluded", "agreementHash": "01" * 32,
                                   "policyHash": "02" * 32}  # fmt: skip
    assert (concluded["agreementId"], concluded["providerPid"]) == ("a1", "p1")
    with Session(migrated) as session:
        assert session.exec(select(AuditEvent.ledger_sequence)).all() == [0]


def test_a_row_committed_later_with_a_lower_id_is_sequenced_not_skipped(
    migrated: Engine, recorder: Recorder
) -> None:
    """On PostgreSQL a lower id can commit after a higher one: a watermark on ids would skip
    it; the sequencer takes every row still unsequenced."""
    me = recorder.participant
    with Session(migrated) as session:
        for row_id in (5, 6):
            session.add(AuditEvent(id=row_id, occurred_at=T, actor=me, action="data access",
                                   subject=f"t{row_id}", outcome="accepted", bytes_sent=row_id,
                                   access_outcome="completed"))  # fmt: skip
        session.commit()
    assert sequence(migrated, recorder) == 2
    with Session(migrated) as session:  # the late commit, below the ids already sequenced
        session.add(AuditEvent(id=3, occurred_at=T, actor=me, action="data access",
                               subject="t3", outcome="accepted", bytes_sent=3,
                               access_outcome="completed"))  # fmt: skip
        session.commit()
    assert sequence(migrated, recorder) == 1
    transfers = [e["detail"]["transferId"] for e in stored_events(migrated, me)]  # type: ignore[index]
    assert transfers == ["t5", "t6", "t3"]
    with Session(migrated) as session:
        assert session.get(AuditEvent, 3).ledger_sequence == 2  # type: ignore[union-attr]
        assert store.verify(session, me, did_key_document(me)).ok


def test_batches_wait_while_the_chain_is_down_and_are_anchored_once_after_a_restart(
    migrated: Engine, recorder: Recorder
) -> None:
    operator = Operator.deploy(Chain.in_process())
    account = new_account_key()
    operator.chain.dev_fund(address_of(account))
    operator.registry.register(operator.key, address_of(account), recorder.participant)
    down = Chain.connect("http://127.0.0.1:1", timeout_s=2).registry(
        operator.registry.address, check_code=False
    )
    for n in range(7):
        record(migrated, recorder.participant, action="data access", subject=f"t{n}",
               bytes_sent=n, access_outcome="completed")  # fmt: skip
    sequence(migrated, recorder)
    assert len(recorder.seal()) == 2  # two full batches of 3; one event waits
    with pytest.raises(ChainError):
        recorder.anchor(down, account)
    with Session(migrated) as session:
        assert len(store.unanchored(session, recorder.participant)) == 2

    restarted = Recorder(  # the connector restarted: a new recorder over the same database
        migrated, recorder.participant, recorder.key_id, recorder.key,
        max_events=3, max_age_s=60.0, clock=Clock(),
    )  # fmt: skip
    assert sequence(migrated, restarted) == 0
    assert len(restarted.seal(flush=True)) == 1
    assert len(restarted.anchor(operator.registry, account)) == 3
    assert restarted.anchor(operator.registry, account) == []  # nothing anchored twice
    assert operator.registry.anchor_count(address_of(account)) == 3
    with Session(migrated) as session:
        assert store.unanchored(session, recorder.participant) == []
        assert store.verify(session, recorder.participant).ok


@pytest.fixture
def regulator(tmp_path: Path) -> Iterator[tuple[str, Operator]]:
    """The regulator's ledger service on loopback, over an in-process chain."""
    operator = Operator.deploy(Chain.in_process())
    settings = LedgerSettings(
        ledger_id="did:web:127.0.0.1%3A8383:ledger",
        database_url=f"sqlite:///{tmp_path / 'regulator.db'}",
        key_passphrase=PASSPHRASE,  # type: ignore[arg-type]
        key_scrypt_log2_n=15,
        registry_address=operator.registry.address,
    )
    with serve_in_thread(create_ledger(settings, chain=operator.chain)) as url:
        yield url, operator


def test_a_refused_push_is_kept_with_the_services_reason_and_tried_again(
    migrated: Engine, recorder: Recorder, regulator: tuple[str, Operator]
) -> None:
    url, operator = regulator
    account = new_account_key()
    operator.chain.dev_fund(address_of(account))
    operator.registry.register(operator.key, address_of(account), recorder.participant)
    for n in range(4):
        record(migrated, recorder.participant, action="data access", subject=f"t{n}",
               bytes_sent=n, access_outcome="completed")  # fmt: skip

    async def push() -> int:
        async with httpx.AsyncClient(timeout=30) as client:
            worker = LedgerWorker(
                engine=migrated, recorder=recorder, client=client, interval_s=0.1,
                anchoring=Anchoring(operator.registry, account),
                pushing=Pushing(url, dict),
            )  # fmt: skip
            return await worker.push()

    sequence(migrated, recorder)
    assert len(recorder.seal(flush=True)) == 2  # events 0-2, and 3
    assert len(recorder.anchor(operator.registry, account)) == 2
    with Session(migrated) as session:  # the participant's copy of event 3 was changed
        row = session.get(store.EventRecord, (recorder.participant, 3))
        assert row is not None
        original = row.body
        row.body = original.replace(b'"bytesSent":3', b'"bytesSent":9')
        assert row.body != original
        session.add(row)
        session.commit()
    for _attempt in range(2):  # refused, and refused again: never skipped
        with pytest.raises(PushError) as refused:
            asyncio.run(push())
        assert (refused.value.batch, refused.value.status) == (1, 400)
        with Session(migrated) as session:
            state = session.get(LedgerPush, recorder.participant)
            assert state is not None
            assert (state.next_batch, state.refused_batch) == (1, 1)  # batch 0 was taken
            assert state.refused_reason == refused.value.reason
            assert state.refused_reason == "root_mismatch"

    with Session(migrated) as session:
        row = session.get(store.EventRecord, (recorder.participant, 3))
        assert row is not None
        row.body = original
        session.add(row)
        session.commit()
    assert asyncio.run(push()) == 1
    with Session(migrated) as session:
        state = session.get(LedgerPush, recorder.participant)
        assert state is not None
        assert (state.next_batch, state.refused_batch, state.refused_reason) == (2, None, None)


def test_a_chain_that_is_down_shows_in_readiness_and_batches_wait(tmp_path: Path) -> None:
    """The worker survives the chain being down: the connector keeps working, ``/health``
    says why the ledger is retrying, and the batches wait unanchored."""
    settings = make_settings(
        f"sqlite:///{tmp_path / 'c.db'}",
        ledger_chain_url=f"http://127.0.0.1:{free_port()}",
        ledger_registry_address="0x" + "11" * 20,
        ledger_chain_key="ab" * 32,
        ledger_chain_timeout_s=1,
        ledger_interval_s=0.05,
        ledger_batch_max_age_s=0.05,
    )
    with TestClient(create_app(settings)) as client:
        assert client.post("/dsp/catalog/request", json={}).status_code == 401  # a refusal

        def retrying() -> str:
            state: str = client.get("/health").json()["workers"]["ledger"]
            return state

        wait_for(lambda: retrying().startswith("retrying: ChainError: chain_unreachable"), timeout_s=30,
                 seen=retrying)  # fmt: skip
        assert client.get("/health").status_code == 200  # the connector itself works on
    engine = create_engine(settings.database_url)
    try:
        with Session(engine) as session:
            waiting = store.unanchored(session, settings.participant_id)
            assert waiting
            assert waiting[0].anchor_transaction is None
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"ledger_chain_key": "zz"}, "64 hex digits"),
        ({"ledger_chain_url": "http://127.0.0.1:8545"}, "need ledger_registry_address"),
        ({"ledger_registry_address": "0x" + "11" * 20}, "needs ledger_chain_key"),
        ({"ledger_url": "http://127.0.0.1:8383"}, "ledger_url and ledger_id go together"),
        (
            {"ledger_url": "http://127.0.0.1:8383", "ledger_id": "did:web:ledger.example"},
            "pushing to ledger_url needs anchoring",
        ),
    ],
)
def test_ledger_settings_that_do_not_go_together_are_refused(
    tmp_path: Path, settings: dict[str, str], problem: str
) -> None:
    with pytest.raises(ValidationError, match=problem):
        make_settings(f"sqlite:///{tmp_path / 'c.db'}", **settings)


def test_audit_rows_from_before_the_migration_are_kept_and_sequenced(engine: Engine) -> None:
    """Migration 0010 adds the ledger's columns to ``audit_event``, NULL in the rows already
    there: they are kept, and the sequencer turns them into ledger events with what they
    recorded."""
    upgrade(engine, connector_migrations(), "a38c570ce382")  # the revision before
    did, key = did_key_participant()
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO audit_event (occurred_at, actor, counterparty, action, subject,"
                " outcome, reason, bytes_sent, rows_sent) VALUES (:at, :actor, :peer,"
                " 'data access', 't0', 'refused', 'invalid_token: expired', NULL, NULL)"
            ),
            {"at": T, "actor": did, "peer": BANK},
        )
    migrate(engine)
    recorder = Recorder(
        engine, did, key.key_id, key.private_key, max_events=3, max_age_s=60.0, clock=Clock()
    )
    assert sequence(engine, recorder) == 1
    (event,) = stored_events(engine, did)
    assert event["detail"] == {"type": "refusal", "scope": "access",
                               "reasons": ["invalid_token: expired"]}  # fmt: skip
    assert event["counterparty"] == BANK


def _flow(engine: Engine, *, personal: bool, region: str | None) -> None:
    """A provider's asset, its negotiation (agreement a1, purpose declared) and a transfer
    under it; and a consumer's negotiation of another provider's asset."""
    from connector.catalog.store import Asset
    from connector.negotiation.store import ContractNegotiationRecord
    from connector.transfer.store import TransferProcessRecord

    def negotiation(pid: str, role: str, asset: str, agreement: str) -> ContractNegotiationRecord:
        return ContractNegotiationRecord(
            id=pid, role=role, state="FINALIZED", consumer_pid=f"c-{pid}", provider_pid=pid,
            counterparty=BANK, counterparty_address="https://bank.example/dsp", offer="{}",
            asset_id=asset, purpose="credit-assessment", agreement_id=agreement,
            counterparty_region=region, created_at=T, updated_at=T,
        )  # fmt: skip

    with Session(engine) as session:
        session.add(
            Asset(
                id="claims", title_en="Claims", domain="health", data_grade="important",
                personal_information=personal,
                legal_basis="contract-or-employment" if personal else None,
                person_count=500 if personal else None,
                data_address="{}", created_at=T,
            )
        )  # fmt: skip
        session.add(negotiation("p1", "provider", "claims", "a1"))
        session.add(negotiation("p9", "consumer", "their-firms", "a9"))
        session.add(
            TransferProcessRecord(
                id="t1", role="provider", state="COMPLETED", consumer_pid="ct1",
                provider_pid="t1", counterparty=BANK, counterparty_address="https://bank.example",
                agreement_id="a1", format="HttpData-PULL", created_at=T, updated_at=T,
            )
        )  # fmt: skip
        session.commit()


def test_the_regulator_fields_are_read_from_the_flow_s_own_records(
    migrated: Engine, recorder: Recorder
) -> None:
    _flow(migrated, personal=True, region="810000")  # a consumer in Hong Kong
    me = recorder.participant
    record(migrated, me, action="asset offered", subject="claims", evidence_hash="cd" * 32)
    record(
        migrated, me, action="agree", counterparty=BANK, process="negotiation",
        from_state="REQUESTED", to_state="AGREED", provider_pid="p1", consumer_pid="c-p1",
    )  # fmt: skip
    record(
        migrated, me, action="data access", counterparty=BANK, subject="t1", bytes_sent=9000,
        rows_sent=800, access_outcome="completed", reason="completed",
    )  # fmt: skip
    record(
        migrated, me, action="start", counterparty=BANK, process="transfer",
        from_state="REQUESTED", to_state="STARTED", provider_pid="t1", consumer_pid="ct1",
    )  # fmt: skip
    record(
        migrated, me, action="verify", counterparty=BANK, process="negotiation",
        from_state="AGREED", to_state="VERIFIED", provider_pid="p9", consumer_pid="c-p9",
    )  # fmt: skip
    assert sequence(migrated, recorder) == 5
    offered, agreed, access, started, consumed = stored_events(migrated, me)

    assert offered["detail"] == {
        "type": "asset.offered", "assetId": "claims", "descriptionHash": "cd" * 32
    }  # fmt: skip
    provider_side = {
        "assetId": "claims", "dataGrade": "important", "personalInformation": True,
        "legalBasis": "contract-or-employment", "scenarioDomain": "health",
    }  # fmt: skip
    assert provider_side.items() <= offered.items()
    for event in (agreed, access, started):
        assert provider_side.items() <= event.items(), event
        assert event["agreementId"] == "a1"
        assert event["purpose"] == "credit-assessment"
        assert event["crossBorder"] is True
    # 800 rows went out, of an asset that holds 500 persons: at most 500; no other event
    # moves data
    assert access["personCount"] == 500
    assert agreed["personCount"] == started["personCount"] == 0
    # the consumer's record of another's asset: what the negotiation says, no more
    assert (consumed["assetId"], consumed["agreementId"]) == ("their-firms", "a9")
    assert consumed["purpose"] == "credit-assessment"
    assert "dataGrade" not in consumed
    assert consumed["personalInformation"] is False


def test_a_mainland_consumer_is_no_cross_border_flow_and_rows_count_persons(
    migrated: Engine, recorder: Recorder
) -> None:
    _flow(migrated, personal=True, region="440106")
    with Session(migrated) as session:
        from connector.catalog.store import Asset

        asset = session.get(Asset, "claims")
        assert asset is not None
        asset.person_count = None  # not stated: each row is a person
        session.add(asset)
        session.commit()
    me = recorder.participant
    record(
        migrated, me, action="data access", counterparty=BANK, subject="t1", bytes_sent=9000,
        rows_sent=800, access_outcome="completed", reason="completed",
    )  # fmt: skip
    assert sequence(migrated, recorder) == 1
    [access] = stored_events(migrated, me)
    assert (access["crossBorder"], access["personCount"]) == (False, 800)


def test_an_asset_without_personal_information_carries_no_persons(
    migrated: Engine, recorder: Recorder
) -> None:
    _flow(migrated, personal=False, region=None)
    me = recorder.participant
    record(
        migrated, me, action="data access", counterparty=BANK, subject="t1", bytes_sent=9000,
        rows_sent=800, access_outcome="completed", reason="completed",
    )  # fmt: skip
    record(migrated, me, action="asset withdrawn", subject="gone", evidence_hash="ef" * 32)
    assert sequence(migrated, recorder) == 2
    access, withdrawn = stored_events(migrated, me)
    assert (access["personalInformation"], access["personCount"]) == (False, 0)
    assert "legalBasis" not in access
    assert access["dataGrade"] == "important"
    assert withdrawn["detail"] == {
        "type": "asset.withdrawn", "assetId": "gone", "descriptionHash": "ef" * 32
    }  # fmt: skip
    assert withdrawn["assetId"] == "gone"
    assert "dataGrade" not in withdrawn


def test_a_matching_run_is_a_psi_event_with_who_learned_what(
    migrated: Engine, recorder: Recorder
) -> None:
    _flow(migrated, personal=False, region=None)
    me = recorder.participant
    # the provider: its set and the consumer's size; the intersection it never learns
    record(
        migrated, me, action="matching run", counterparty=BANK, subject="t1",
        bytes_sent=5000, rows_sent=4096, psi_mode="cardinality", psi_own_items=1_048_576,
        psi_peer_items=4096, reason="cardinality run",
    )  # fmt: skip
    # the consumer's view of a run (this participant matched against the bank's set)
    record(
        migrated, me, action="matching run", counterparty=BANK, subject="t2",
        agreement_id="a9", psi_mode="intersection", psi_own_items=4096,
        psi_peer_items=1_048_576, psi_intersection=37, bytes_sent=5000,
        reason="intersection run",
    )  # fmt: skip
    record(
        migrated, me, action="matching run", counterparty=BANK, subject="t3",
        outcome=Outcome.REFUSED, reason="count_exhausted: no runs left",
    )  # fmt: skip
    assert sequence(migrated, recorder) == 3
    provided, consumed, answers, refused = stored_events(migrated, me)
    # the consumer's run also says what its answers held, for the flow's byte count
    assert answers["detail"] == {
        "type": "dataplane.access", "transferId": "t2", "bytesSent": 5000, "outcome": "complete"
    }  # fmt: skip
    assert provided["detail"] == {
        "type": "psi.run", "ownSetSize": 1_048_576, "peerSetSize": 4096,
        "revealMode": "cardinality",
        "parties": [{"participant": BANK, "learned": "cardinality"},
                    {"participant": me, "learned": "nothing"}],
    }  # fmt: skip
    assert (provided["agreementId"], provided["assetId"]) == ("a1", "claims")
    assert consumed["detail"]["intersectionSize"] == 37  # type: ignore[index]
    assert consumed["detail"]["parties"] == [  # type: ignore[index]
        {"participant": me, "learned": "intersection"},
        {"participant": BANK, "learned": "nothing"},
    ]
    assert consumed["assetId"] == "their-firms"
    assert refused["detail"] == {
        "type": "refusal", "scope": "access", "reasons": ["count_exhausted: no runs left"]
    }  # fmt: skip


def test_a_batch_is_pushed_only_once_its_anchor_has_its_confirmations(
    migrated: Engine, recorder: Recorder, regulator: tuple[str, Operator]
) -> None:
    """With ``ledger_confirmations`` 3, an anchored batch waits for 3 more blocks before the
    regulator sees it: a shallower reorganisation is mended here (anchored again) first."""
    url, operator = regulator
    account = new_account_key()
    operator.chain.dev_fund(address_of(account))
    operator.registry.register(operator.key, address_of(account), recorder.participant)
    record(migrated, recorder.participant, action="data access", subject="t0", bytes_sent=1,
           access_outcome="completed")  # fmt: skip

    async def push() -> int:
        async with httpx.AsyncClient(timeout=30) as client:
            worker = LedgerWorker(
                engine=migrated, recorder=recorder, client=client, interval_s=0.1,
                anchoring=Anchoring(operator.registry, account, confirmations=3),
                pushing=Pushing(url, dict),
            )  # fmt: skip
            return await worker.push()

    sequence(migrated, recorder)
    recorder.seal(flush=True)
    [anchored] = recorder.anchor(operator.registry, account)
    for mined in range(3):
        assert operator.chain.block_number() - anchored.anchor.block_number == mined
        assert asyncio.run(push()) == 0
        operator.chain.dev_fund(address_of(new_account_key()))  # one more block
    assert asyncio.run(push()) == 1


def test_what_the_consumer_received_joins_the_flow_of_what_the_provider_sent(
    migrated: Engine, recorder: Recorder
) -> None:
    """The provider's access names only its transfer: the transfer's process ids are read for
    it; the consumer's ``data received`` (reported by the SDK) carries its own."""
    _flow(migrated, personal=False, region=None)
    me = recorder.participant
    record(
        migrated, me, action="data access", counterparty=BANK, subject="t1", bytes_sent=9000,
        access_outcome="completed", reason="completed",
    )  # fmt: skip
    record(
        migrated, me, action="data received", counterparty=BANK, subject="ct9",
        process="transfer", provider_pid="pt9", consumer_pid="ct9", agreement_id="a9",
        bytes_sent=8000, access_outcome="interrupted", reason="interrupted",
    )  # fmt: skip
    assert sequence(migrated, recorder) == 2
    sent, received = stored_events(migrated, me)
    assert (sent["providerPid"], sent["consumerPid"]) == ("t1", "ct1")
    assert sent["detail"]["bytesSent"] == 9000  # type: ignore[index]
    assert (received["providerPid"], received["consumerPid"]) == ("pt9", "ct9")
    assert received["detail"] == {
        "type": "dataplane.access", "transferId": "ct9", "bytesSent": 8000,
        "outcome": "interrupted",
    }  # fmt: skip
    assert received["assetId"] == "their-firms"


def test_a_cancelled_worker_ends_only_once_its_round_in_the_thread_has(
    migrated: Engine, recorder: Recorder
) -> None:
    """The app disposes of its engine once its workers' tasks end: a round still running in a
    thread then would return its connection to a pool nothing closes (a PostgreSQL connection
    left open, found by its finalizer in a later test)."""
    import threading
    import time

    finished = threading.Event()

    class Slow(LedgerWorker):
        def local_round(self) -> None:
            time.sleep(0.3)
            finished.set()

    async def cancel_mid_round() -> bool:
        async with httpx.AsyncClient() as client:
            worker = Slow(engine=migrated, recorder=recorder, client=client, interval_s=10)
            task = asyncio.create_task(worker.run())
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return finished.is_set()

    assert asyncio.run(cancel_mid_round())
