"""The authority's decisions are audited in the transaction that makes them: a request received,
approved (by the allow-list or the operator, named by its key's id), rejected, credentials
issued, a delivery that failed, a credential revoked. A refused decision leaves no event and
changes nothing; so does one whose event cannot be written. The operator lists them by page."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from broker.app import create_app
from broker.authority.store import DecidedBy, Decider
from broker.settings import BrokerSettings
from identity.documents import Service
from identity.keyring import KeyRing
from identity.resolver import did_web_url
from identity.sts import WRITE_SCOPE, SecureTokenService
from tests.identity.world import COST, PASSPHRASE, engine_for
from tests.participants import ADMIN_KEY, BANK_ORG

AUTHORITY = "did:web:authority.test"
BANK = "did:web:bank.test"
OPERATOR = {"X-Api-Key": ADMIN_KEY}
OPERATOR_KEY_ID = "key:" + hashlib.sha256(ADMIN_KEY.encode()).hexdigest()[:16]
TYPES = ["MembershipCredential", "FinancialInstitutionCredential"]


@dataclass
class Holder:
    """The bank's side, in memory: its DID document, and a Credential Service that answers
    ``delivery_status`` (and records what it was given)."""

    ring: KeyRing
    delivery_status: int = 200
    delivered: list[dict[str, Any]] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        if url == did_web_url(BANK):
            service = Service(
                f"{BANK}#credential-service", "CredentialService", "https://bank.test/cs"
            )
            return httpx.Response(200, json=self.ring.document([service]).to_json())
        if url == "https://bank.test/cs/credentials":
            self.delivered.append(json.loads(request.content))
            return httpx.Response(self.delivery_status)
        return httpx.Response(404)

    def ask(self, client: TestClient, types: list[str] = TYPES) -> dict[str, Any]:
        sts = SecureTokenService(self.ring, lambda: datetime.now(UTC))
        grant = sts.access_token(AUTHORITY, [WRITE_SCOPE], lifetime=timedelta(days=1))
        answer = client.post(
            "/credentials",
            json={
                "type": "CredentialRequestMessage",
                "holderPid": "urn:uuid:bank-ask",
                "credentials": [{"id": kind} for kind in types],
            },
            headers={"Authorization": "Bearer " + sts.id_token(AUTHORITY, token=grant)},
        )
        assert answer.status_code == 201, answer.text
        status: dict[str, Any] = answer.json()
        return status


@pytest.fixture
def holder() -> Holder:
    engine = engine_for()
    return Holder(KeyRing.load_or_create(engine, BANK, PASSPHRASE, datetime.now(UTC), cost=COST))


def broker(tmp_path: Path, holder: Holder, *, allow: bool) -> TestClient:
    settings = BrokerSettings(
        authority_id=AUTHORITY,
        database_url=f"sqlite:///{tmp_path / 'broker.db'}",
        key_passphrase=PASSPHRASE,  # type: ignore[arg-type]
        admin_api_key=ADMIN_KEY,  # type: ignore[arg-type]
        onboarding_allow={BANK: {"types": TYPES, "organisation": BANK_ORG}} if allow else {},  # type: ignore[dict-item]
    )
    return TestClient(create_app(settings, transport=httpx.MockTransport(holder.handle)))


@pytest.fixture
def closed(tmp_path: Path, holder: Holder) -> Iterator[TestClient]:
    """No allow-list: every request waits for the operator."""
    with broker(tmp_path, holder, allow=False) as client:
        yield client


def events(client: TestClient, **params: Any) -> list[dict[str, Any]]:
    answer = client.get("/admin/audit", headers=OPERATOR, params={"limit": 500, **params})
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


def summary(client: TestClient) -> list[tuple[str, str, str, str | None, str | None]]:
    """Oldest first: decision, subject, who decided, the operator's key id, the detail."""
    return [
        (e["decision"], e["subject"], e["decidedBy"], e["operatorKeyId"], e["detail"])
        for e in reversed(events(client))
    ]


def state(client: TestClient) -> tuple[object, object]:
    requests = client.get("/admin/requests", headers=OPERATOR).json()
    credentials = client.get("/admin/credentials", headers=OPERATOR).json()
    return requests, credentials


def approve(client: TestClient, request_id: str) -> Any:
    return client.post(
        f"/admin/requests/{request_id}/approve", headers=OPERATOR, json={"organisation": BANK_ORG}
    )


def test_an_allow_listed_request_is_audited_as_received_approved_and_issued(
    tmp_path: Path, holder: Holder
) -> None:
    with broker(tmp_path, holder, allow=True) as client:
        status = holder.ask(client)
        assert status["status"] == "ISSUED"
        issued = {c["id"] for c in client.get("/admin/credentials", headers=OPERATOR).json()}
        trail = events(client)
    assert [(e["decision"], e["decidedBy"], e["operatorKeyId"]) for e in reversed(trail)] == [
        ("request_received", "holder", None),
        ("request_approved", "allow-list", None),
        ("credential_issued", "allow-list", None),
        ("credential_issued", "allow-list", None),
    ]
    assert {e["subject"] for e in trail} == {BANK}
    assert {e["requestId"] for e in trail} == {status["issuerPid"]}
    assert {e["credentialId"] for e in trail if e["decision"] == "credential_issued"} == issued
    assert all(datetime.fromisoformat(e["occurredAt"]).tzinfo is not None for e in trail)


def test_the_operators_decisions_are_audited_with_its_key_id(
    closed: TestClient, holder: Holder
) -> None:
    first, second = holder.ask(closed)["issuerPid"], holder.ask(closed)["issuerPid"]
    assert approve(closed, first).json()["status"] == "ISSUED"
    rejected = closed.post(
        f"/admin/requests/{second}/reject", headers=OPERATOR, json={"reason": "not a bank"}
    )
    assert rejected.json()["status"] == "REJECTED"
    credential = closed.get("/admin/credentials", headers=OPERATOR).json()[0]
    revoke = f"/admin/credentials/{credential['id']}/revoke"
    assert closed.post(revoke, headers=OPERATOR).json()["revoked"] is True
    assert closed.post(revoke, headers=OPERATOR).json()["revoked"] is True  # no change: no event
    operator = ("operator", OPERATOR_KEY_ID)
    assert summary(closed) == [
        ("request_received", BANK, "holder", None, " ".join(TYPES)),
        ("request_received", BANK, "holder", None, " ".join(TYPES)),
        ("request_approved", BANK, *operator, " ".join(TYPES)),
        ("credential_issued", BANK, *operator, TYPES[0]),
        ("credential_issued", BANK, *operator, TYPES[1]),
        ("request_rejected", BANK, *operator, "not a bank"),
        ("credential_revoked", BANK, *operator, credential["type"]),
    ]
    (revoked,) = events(closed, decision="credential_revoked")
    assert (revoked["credentialId"], revoked["requestId"]) == (credential["id"], first)
    assert ADMIN_KEY not in json.dumps(events(closed))


def test_a_failed_delivery_is_audited_and_nothing_is_issued(
    closed: TestClient, holder: Holder
) -> None:
    request_id = holder.ask(closed)["issuerPid"]
    holder.delivery_status = 500
    assert approve(closed, request_id).json()["status"] == "RECEIVED"
    assert closed.get("/admin/credentials", headers=OPERATOR).json() == []
    assert [e[0] for e in summary(closed)] == ["request_received", "delivery_failed"]
    assert "Credential Service answered 500" in str(summary(closed)[-1][4])
    holder.delivery_status = 200  # the operator approves again
    assert approve(closed, request_id).json()["status"] == "ISSUED"
    assert [e[0] for e in summary(closed)][-3:] == [
        "request_approved", "credential_issued", "credential_issued",
    ]  # fmt: skip


def test_refused_decisions_leave_no_event_and_change_nothing(
    closed: TestClient, holder: Holder
) -> None:
    rejected = holder.ask(closed)["issuerPid"]
    closed.post(f"/admin/requests/{rejected}/reject", headers=OPERATOR, json={"reason": "no"})
    before, trail = state(closed), events(closed)
    refusals: list[tuple[Any, int, str]] = [
        (approve(closed, rejected), 409, "already_decided"),
        (closed.post(f"/admin/requests/{rejected}/reject", headers=OPERATOR,
                     json={"reason": "again"}), 409, "already_decided"),
        (approve(closed, "no-such-request"), 404, "unknown_request"),
        (closed.post("/admin/requests/no-such-request/reject", headers=OPERATOR,
                     json={"reason": "x"}), 404, "unknown_request"),
        (closed.post("/admin/credentials/urn:uuid:nope/revoke", headers=OPERATOR), 404,
         "unknown_credential"),
        (closed.post(f"/admin/requests/{rejected}/reject", headers=OPERATOR, json={}), 422,
         "invalid_request"),
        (closed.post(f"/admin/requests/{rejected}/reject", headers={"X-Api-Key": "x" * 20},
                     json={"reason": "x"}), 401, "not_operator"),
    ]  # fmt: skip
    for answer, status, reason in refusals:
        assert (answer.status_code, answer.json()["reason"]) == (status, reason), answer.text
    assert (state(closed), events(closed)) == (before, trail)


def test_a_decision_whose_event_cannot_be_written_does_not_take_effect(
    closed: TestClient, holder: Holder
) -> None:
    """The event is in the decision's transaction: when its write fails, so does the decision."""
    request_id = holder.ask(closed)["issuerPid"]
    approve(closed, request_id)
    credential_id = closed.get("/admin/credentials", headers=OPERATOR).json()[0]["id"]
    other = holder.ask(closed)["issuerPid"]
    before, trail = state(closed), events(closed)
    engine = closed.app.state.engine  # type: ignore[attr-defined]
    with engine.begin() as connection:
        connection.execute(
            text(
                "CREATE TRIGGER audit_down BEFORE INSERT ON authority_audit_event "
                "BEGIN SELECT RAISE(ABORT, 'the audit trail cannot be written'); END"
            )
        )
    authority = closed.app.state.authority  # type: ignore[attr-defined]
    operator = Decider(DecidedBy.OPERATOR, OPERATOR_KEY_ID)
    with pytest.raises(IntegrityError, match="audit trail"):
        authority.reject(other, "no", operator)
    with pytest.raises(IntegrityError, match="audit trail"):
        authority.revoke(credential_id, operator)
    with engine.begin() as connection:
        connection.execute(text("DROP TRIGGER audit_down"))
    assert (state(closed), events(closed)) == (before, trail)


def test_the_audit_is_listed_by_page_for_the_operator_only(
    closed: TestClient, holder: Holder
) -> None:
    for _ in range(3):
        holder.ask(closed)
    assert closed.get("/admin/audit").status_code == 401
    first = closed.get("/admin/audit", headers=OPERATOR, params={"limit": 2}).json()
    assert (len(first["items"]), first["next"]) == (2, 2)
    rest = closed.get("/admin/audit", headers=OPERATOR, params={"offset": 2, "limit": 2}).json()
    assert (len(rest["items"]), rest["next"]) == (1, None)
    ids = [e["id"] for e in first["items"] + rest["items"]]
    assert ids == sorted(ids, reverse=True)  # newest first
    assert events(closed, subject="did:web:someone.else") == []
    for params in ({"limit": 501}, {"limit": 0}, {"offset": -1}, {"offset": 10**12},
                   {"decision": "bribed"}):  # fmt: skip
        refused = closed.get("/admin/audit", headers=OPERATOR, params=params)
        assert (refused.status_code, refused.json()["reason"]) == (422, "invalid_request")


def test_the_holders_write_token_is_not_kept_once_the_request_is_decided(
    closed: TestClient, holder: Holder
) -> None:
    issued, rejected, waiting = (holder.ask(closed)["issuerPid"] for _ in range(3))
    approve(closed, issued)
    closed.post(f"/admin/requests/{rejected}/reject", headers=OPERATOR, json={"reason": "no"})
    engine = closed.app.state.engine  # type: ignore[attr-defined]
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT id, write_token FROM credential_request"))
        tokens = dict(rows.all())
    assert tokens[issued] == tokens[rejected] == ""
    assert tokens[waiting].count(".") == 2  # still needed to deliver once approved
