"""The regulator's ledger service taking participants' batches (web3's in-process chain,
participants on did:key): what it accepts, what it refuses and why, and that a refused batch
leaves nothing behind."""

from __future__ import annotations

import copy
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select

from identity import jwt_sign, keys
from ledger import store
from ledger.app import create_app
from ledger.archive import FlowRecord, ReceivedBatch
from ledger.batches import BATCH_TYP
from ledger.chain import Chain, address_of, new_account_key
from ledger.settings import LedgerSettings
from storage.engine import create_engine
from tests.ledger.pushes import PASSPHRASE, Operator, Side, did_key_participant
from tests.ledger.test_chain import answering
from tests.loopback import free_port

LEDGER_DID = "did:web:127.0.0.1%3A8383:ledger"


def settings_for(database_url: str, registry: str | None) -> LedgerSettings:
    return LedgerSettings(
        ledger_id=LEDGER_DID,
        database_url=database_url,
        key_passphrase=PASSPHRASE,  # type: ignore[arg-type]
        key_scrypt_log2_n=15,
        registry_address=registry,
    )


@pytest.fixture
def operator() -> Operator:
    return Operator.deploy(Chain.in_process())


@pytest.fixture
def side(tmp_path: Path, operator: Operator) -> Iterator[Side]:
    did, key = did_key_participant()
    participant = Side(tmp_path, did, key, operator)
    yield participant
    participant.close()


@pytest.fixture
def regulator_db(database_url: str) -> str:
    return database_url


@pytest.fixture
def ledger(regulator_db: str, operator: Operator) -> Iterator[TestClient]:
    app = create_app(settings_for(regulator_db, operator.registry.address), chain=operator.chain)
    with TestClient(app) as client:
        yield client


def anchored(side: Side, events: int = 10) -> list[dict[str, Any]]:
    side.record(events)
    side.seal()
    side.anchor()
    return side.pushes()


def counts(database_url: str) -> tuple[int, int, int, int]:
    engine: Engine = create_engine(database_url)
    try:
        with Session(engine) as session:
            return tuple(  # type: ignore[return-value]
                session.exec(select(func.count()).select_from(table)).one()
                for table in (store.EventRecord, store.BatchRecord, FlowRecord, ReceivedBatch)
            )
    finally:
        engine.dispose()


def test_batches_are_accepted_in_order_and_a_repeat_is_answered_as_before(
    ledger: TestClient, side: Side, regulator_db: str
) -> None:
    pushes = anchored(side)
    assert len(pushes) == 3
    answers = []
    for push in pushes:
        response = ledger.post("/ledger/v1/batches", json=push)
        assert response.status_code == 201, response.text
        answers.append(response.json())
    assert [a["batchSequence"] for a in answers] == [0, 1, 2]
    assert answers[0]["transaction"] == pushes[0]["transaction"]
    again = ledger.post("/ledger/v1/batches", json=pushes[1])
    assert again.status_code == 200
    assert again.json() == answers[1] | {"replayed": True}
    assert counts(regulator_db) == (10, 3, 10, 3)


def test_a_batch_is_accepted_without_the_transaction_found_on_chain(
    ledger: TestClient, side: Side
) -> None:
    push = anchored(side, 3)[0]
    transaction = push.pop("transaction")
    response = ledger.post("/ledger/v1/batches", json=push)
    assert response.status_code == 201, response.text
    assert response.json()["transaction"] == transaction


def refusal(response: Any, status: int, reason: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["reason"] == reason, body
    assert body["type"] == "LedgerError"
    return body


def test_a_batch_ahead_of_the_next_one_is_refused_with_what_is_expected(
    ledger: TestClient, side: Side, regulator_db: str
) -> None:
    pushes = anchored(side)
    body = refusal(ledger.post("/ledger/v1/batches", json=pushes[1]), 409, "out_of_order")
    assert (body["expectedBatchSequence"], body["expectedFirstSequence"]) == (0, 0)
    assert ledger.post("/ledger/v1/batches", json=pushes[0]).status_code == 201
    body = refusal(ledger.post("/ledger/v1/batches", json=pushes[2]), 409, "out_of_order")
    assert (body["expectedBatchSequence"], body["expectedFirstSequence"]) == (1, 4)
    assert counts(regulator_db) == (4, 1, 4, 1)


def test_another_batch_under_an_accepted_number_is_a_conflict(
    ledger: TestClient, side: Side, tmp_path: Path
) -> None:
    push = anchored(side, 4)[0]
    assert ledger.post("/ledger/v1/batches", json=push).status_code == 201
    fork = Side(tmp_path, side.did, side.key, None, name="fork")
    fork.record(4)
    fork.seal()
    [forked] = fork.pushes()
    refusal(ledger.post("/ledger/v1/batches", json=forked | {"account": push["account"]}),
            409, "batch_conflict")  # fmt: skip
    changed = copy.deepcopy(push)
    changed["events"][0]["personCount"] += 1
    refusal(ledger.post("/ledger/v1/batches", json=changed), 409, "batch_conflict")
    fork.close()


def test_a_batch_signed_by_another_key_is_refused(ledger: TestClient, side: Side) -> None:
    push = anchored(side, 4)[0]
    _protected, claims = jwt_sign.unverified(push["signedHeader"])
    forged = jwt_sign.sign(claims, keys.generate(keys.KeyType.ED25519), side.key.key_id, BATCH_TYP)
    refusal(ledger.post("/ledger/v1/batches", json=push | {"signedHeader": forged}),
            403, "bad_signature")  # fmt: skip


@pytest.mark.parametrize(
    ("change", "status", "reason"),
    [
        pytest.param({"personCount": 999_999}, 400, "root_mismatch", id="changed-event"),
        pytest.param({"personCount": -1}, 400, "malformed_event", id="negative-count"),
        pytest.param({"personCount": 2**60}, 400, "malformed_event", id="count-out-of-range"),
        pytest.param({"counterparty": None}, 400, "malformed_event", id="not-canonical"),
        pytest.param({"surprise": 1}, 400, "malformed_event", id="unknown-field"),
        pytest.param(
            {"participant": "did:web:other.example.cn"}, 400, "foreign_event", id="foreign-event"
        ),
    ],
)
def test_events_that_are_not_the_signed_ones_are_refused(
    ledger: TestClient, side: Side, regulator_db: str, change: dict[str, Any], status: int,
    reason: str,
) -> None:  # fmt: skip
    push = copy.deepcopy(anchored(side, 4)[0])
    push["events"][1] |= change
    refusal(ledger.post("/ledger/v1/batches", json=push), status, reason)
    assert counts(regulator_db) == (0, 0, 0, 0)


def test_events_missing_or_reordered_are_refused(ledger: TestClient, side: Side) -> None:
    push = anchored(side, 4)[0]
    short = push | {"events": push["events"][:3]}
    refusal(ledger.post("/ledger/v1/batches", json=short), 400, "wrong_range")
    swapped = push | {"events": [push["events"][1], push["events"][0], *push["events"][2:]]}
    refusal(ledger.post("/ledger/v1/batches", json=swapped), 400, "root_mismatch")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        pytest.param({}, "malformed_batch", id="empty"),
        pytest.param(
            {"signedHeader": "x.y.z", "events": [{}], "account": "0x" + "1" * 40},
            "malformed_batch",
            id="not-a-jws",
        ),
        pytest.param(
            {"signedHeader": "a", "events": [], "account": "0x" + "1" * 40},
            "malformed_batch",
            id="no-events",
        ),
        pytest.param(
            {"signedHeader": "a", "events": [{}], "account": "nope"},
            "malformed_batch",
            id="bad-account",
        ),
    ],
)
def test_malformed_pushes_are_refused(ledger: TestClient, body: Any, reason: str) -> None:
    refusal(ledger.post("/ledger/v1/batches", json=body), 400, reason)


def test_a_batch_anchored_by_an_account_of_someone_else_is_refused(
    ledger: TestClient, side: Side, operator: Operator, tmp_path: Path
) -> None:
    other_did, other_key = did_key_participant()
    other = Side(tmp_path, other_did, other_key, operator, name="other")
    push = anchored(side, 4)[0]
    refusal(ledger.post("/ledger/v1/batches", json=push | {"account": address_of(other.account)}),
            403, "wrong_account")  # fmt: skip
    other.close()


def test_an_unregistered_or_suspended_participant_is_refused(
    ledger: TestClient, side: Side, operator: Operator, tmp_path: Path, regulator_db: str
) -> None:
    push = anchored(side, 4)[0]
    stranger = address_of(new_account_key())
    refusal(ledger.post("/ledger/v1/batches", json=push | {"account": stranger}),
            403, "participant_not_registered")  # fmt: skip
    operator.registry.suspend(operator.key, push["account"])
    refusal(ledger.post("/ledger/v1/batches", json=push), 403, "participant_suspended")
    assert counts(regulator_db) == (0, 0, 0, 0)
    operator.registry.reinstate(operator.key, push["account"])
    assert ledger.post("/ledger/v1/batches", json=push).status_code == 201


def test_a_batch_not_on_chain_yet_is_refused_until_it_is(ledger: TestClient, side: Side) -> None:
    side.record(4)
    side.seal()
    [push] = side.pushes()
    refusal(ledger.post("/ledger/v1/batches", json=push), 409, "not_anchored")
    side.anchor()
    assert ledger.post("/ledger/v1/batches", json=side.pushes()[0]).status_code == 201


def test_a_transaction_that_did_not_anchor_the_root_is_refused(
    ledger: TestClient, side: Side
) -> None:
    pushes = anchored(side, 8)
    wrong = pushes[0] | {"transaction": pushes[1]["transaction"]}
    refusal(ledger.post("/ledger/v1/batches", json=wrong), 400, "wrong_transaction")


@pytest.mark.parametrize("node", ["down", "slow", "garbage"])
def test_a_chain_that_cannot_be_read_is_retryable_and_nothing_is_stored(
    node: str, side: Side, operator: Operator, regulator_db: str
) -> None:
    push = anchored(side, 4)[0]

    def attempt(url: str) -> None:
        chain = Chain.connect(url, timeout_s=0.5)
        app = create_app(settings_for(regulator_db, operator.registry.address), chain=chain)
        with TestClient(app) as client:
            response = client.post("/ledger/v1/batches", json=push)
        refusal(response, 503, "chain_unavailable")
        assert response.headers["Retry-After"]

    if node == "down":
        attempt(f"http://127.0.0.1:{free_port()}")
    elif node == "slow":
        with socket.socket() as listener:  # accepts connections, never answers
            listener.bind(("127.0.0.1", 0))
            listener.listen(8)
            attempt(f"http://127.0.0.1:{listener.getsockname()[1]}")
    else:
        with answering(b'{"jsonrpc": "2.0", "id": 0, "result": "banana"}') as url:
            attempt(url)
    assert counts(regulator_db) == (0, 0, 0, 0)


def test_without_a_configured_registry_batches_are_refused(
    regulator_db: str, side: Side, operator: Operator
) -> None:
    push = anchored(side, 4)[0]
    with TestClient(create_app(settings_for(regulator_db, None), chain=operator.chain)) as client:
        refusal(client.post("/ledger/v1/batches", json=push), 503, "chain_unavailable")


def test_queries_need_a_dcp_token(ledger: TestClient) -> None:
    response = ledger.get("/ledger/v1/flows")
    refusal(response, 401, "not_authenticated")
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert ledger.get("/ledger/v1/flows", headers={"Authorization": "Bearer x"}).status_code == 401
    proof = ledger.get(f"/ledger/v1/events/{'0' * 36}/proof")
    refusal(proof, 401, "not_authenticated")


def test_the_service_serves_its_did_document(ledger: TestClient) -> None:
    document = ledger.get("/ledger/did.json").json()
    assert document["id"] == LEDGER_DID
    assert document["assertionMethod"]


def test_a_batch_whose_store_fails_midway_leaves_nothing(
    ledger: TestClient, side: Side, operator: Operator, tmp_path: Path, regulator_db: str
) -> None:
    first = anchored(side, 4)[0]
    assert ledger.post("/ledger/v1/batches", json=first).status_code == 201
    other_did, other_key = did_key_participant()
    other = Side(tmp_path, other_did, other_key, operator, name="other")
    other.record(3)
    other.record(1, event_id=first["events"][0]["eventId"])  # the last one collides on insert
    other.seal()
    other.anchor()
    [push] = other.pushes()
    refusal(ledger.post("/ledger/v1/batches", json=push), 409, "duplicate_event")
    assert counts(regulator_db) == (4, 1, 4, 1)
    other.close()
