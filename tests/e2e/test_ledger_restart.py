"""A connector killed (SIGKILL) again and again while its ledger worker sequences, seals,
anchors on a real anvil and pushes to the regulator's ledger service: after its last restart
every audit row is sequenced exactly once, every batch is anchored exactly once (the chain
holds as many anchors as the connector holds batches), the ledger service took every batch,
and the participant's stored ledger verifies."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session, col, func, select

from connector.audit import AuditEvent
from connector.ledger import NOT_AN_EVENT, LedgerPush
from dataspace.servers import bind, serve_in_thread
from identity.credentials import CredentialType
from ledger import store
from ledger.app import create_app as create_ledger
from ledger.chain import Chain, address_of, new_account_key
from ledger.settings import LedgerSettings
from storage.engine import create_engine
from tests.e2e.forked import ConnectorProcess
from tests.e2e.test_negotiation import wait_for
from tests.ledger import nodetools
from tests.ledger.pushes import Operator
from tests.participants import LOOPBACK, PASSPHRASE, connector_settings, did_for, url_for

KILLS = 6
AUTHORITY = "did:web:authority.example"


@pytest.fixture
def killed(tmp_path: Path) -> Iterator[tuple[ConnectorProcess, Operator, str, LedgerSettings]]:
    with nodetools.anvil() as chain_url:
        operator = Operator.deploy(Chain.connect(chain_url, timeout_s=10))
        ledger_sock, bureau_sock = bind(), bind()
        ledger = LedgerSettings(
            ledger_id=did_for(ledger_sock, "ledger"),
            public_url=url_for(ledger_sock),
            database_url=f"sqlite:///{tmp_path / 'regulator-ledger.db'}",
            key_passphrase=PASSPHRASE,  # type: ignore[arg-type]
            key_scrypt_log2_n=15,
            trusted_issuers={kind: [AUTHORITY] for kind in CredentialType},
            did_web_allow_http=True,
            outbound_allowed_networks=LOOPBACK,
            chain_url=chain_url,
            registry_address=operator.registry.address,
        )
        bureau = connector_settings(bureau_sock, tmp_path, "bureau", AUTHORITY)
        bureau_sock.close()  # the process binds the port again
        account = new_account_key()
        operator.chain.dev_fund(address_of(account))
        operator.registry.register(operator.key, address_of(account), bureau.participant_id)
        with serve_in_thread(create_ledger(ledger), ledger_sock) as ledger_url:
            side = ConnectorProcess(
                "bureau", bureau, tmp_path / "bureau.log",
                {
                    "CONNECTOR_LEDGER_CHAIN_URL": chain_url,
                    "CONNECTOR_LEDGER_REGISTRY_ADDRESS": operator.registry.address,
                    "CONNECTOR_LEDGER_CHAIN_KEY": account.hex(),
                    "CONNECTOR_LEDGER_URL": ledger_url,
                    "CONNECTOR_LEDGER_ID": ledger.ledger_id,
                    "CONNECTOR_LEDGER_INTERVAL_S": "0.05",
                    "CONNECTOR_LEDGER_BATCH_MAX_EVENTS": "7",
                    "CONNECTOR_LEDGER_BATCH_MAX_AGE_S": "0.2",
                },
            )  # fmt: skip
            try:
                side.start()
                yield side, operator, address_of(account), ledger
            finally:
                side.stop()


def refused_requests(side: ConnectorProcess, count: int) -> None:
    """Catalog requests without a token: each refused and audited, each a ledger event."""
    for _ in range(count):
        try:
            httpx.post(f"{side.url}/dsp/catalog/request", json={}, timeout=5)
        except httpx.TransportError:
            return  # killed meanwhile


def state(side: ConnectorProcess) -> tuple[int, int, int, int, int, int]:
    """Audit rows, unsequenced rows, ledger events, batches, unanchored batches, next push."""
    engine = create_engine(side.settings.database_url)
    me = side.settings.participant_id
    try:
        with Session(engine) as session:
            rows = session.exec(select(func.count()).select_from(AuditEvent)).one()
            unsequenced = session.exec(
                select(func.count())
                .select_from(AuditEvent)
                .where(col(AuditEvent.ledger_sequence).is_(None))
            ).one()
            batches = session.exec(
                select(func.count())
                .select_from(store.BatchRecord)
                .where(store.BatchRecord.participant == me)
            ).one()
            push = session.get(LedgerPush, me)
            return (
                rows, unsequenced, store.event_count(session, me), batches,
                len(store.unanchored(session, me)), 0 if push is None else push.next_batch,
            )  # fmt: skip
    finally:
        engine.dispose()


def test_kill_and_restart_leave_nothing_unsequenced_nor_anchored_twice(
    killed: tuple[ConnectorProcess, Operator, str, LedgerSettings],
) -> None:
    side, operator, account, ledger = killed
    chance = random.Random(14)  # noqa: S311 - a reproducible schedule of kills, no secret
    for _ in range(KILLS):
        refused_requests(side, chance.randint(3, 12))
        time.sleep(chance.uniform(0.0, 0.3))  # somewhere in a round of the ledger worker
        side.kill()
        side.start()
    refused_requests(side, 5)

    def settled() -> bool:
        _rows, unsequenced, events, batches, unanchored, next_push = state(side)
        return (
            unsequenced == 0
            and unanchored == 0
            and events > 0
            and next_push == batches
            and (batches > 0 and store_events_batched(side, events))
        )

    wait_for(settled, timeout_s=60, seen=lambda: (state(side), side.tail(10)))
    rows, _unsequenced, events, batches, _unanchored, _next = state(side)
    assert operator.registry.anchor_count(account) == batches  # each batch once on chain

    engine = create_engine(side.settings.database_url)
    try:
        with Session(engine) as session:
            marks = session.exec(select(AuditEvent.ledger_sequence)).all()
            sequenced = sorted(m for m in marks if m is not None and m != NOT_AN_EVENT)
            assert sequenced == list(range(events))  # each row once, no gaps, no repeats
            assert store.verify(session, side.settings.participant_id).ok
    finally:
        engine.dispose()
    assert events >= KILLS * 3  # the refusals (and nothing lost of them)
    assert rows >= events

    regulator = create_engine(ledger.database_url)
    try:
        with Session(regulator) as session:
            last = store.last_batch(session, side.settings.participant_id)
            assert last is not None
            assert last.batch_sequence == batches - 1  # the service took every batch
    finally:
        regulator.dispose()


def store_events_batched(side: ConnectorProcess, events: int) -> bool:
    """Every ledger event is in a batch (the last batch ends with the last event)."""
    engine = create_engine(side.settings.database_url)
    try:
        with Session(engine) as session:
            last = store.last_batch(session, side.settings.participant_id)
            return last is not None and last.last_sequence == events - 1
    finally:
        engine.dispose()
