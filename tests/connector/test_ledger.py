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
