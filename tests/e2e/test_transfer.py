"""Transfer processes between two connectors over real HTTP, after a finalized agreement."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from sqlmodel import Session, col, select

from connector.outbox import Delivery, OutboxMessage
from connector.settings import ConnectorSettings
from storage.engine import create_engine
from tests.dsp_schemas import errors
from tests.e2e.space import Space, call
from tests.e2e.test_negotiation import KEY, negotiate, ready, state_of, wait_for

DSP = "https://w3id.org/dspace/2025/1/context.jsonld"


def agreed(space: Space) -> str:
    negotiation = negotiate(space, ready(space))
    wait_for(lambda: state_of(space.bank.base_url, negotiation["id"])["state"] == "FINALIZED")
    agreement_id: str = state_of(space.bank.base_url, negotiation["id"])["agreementId"]
    return agreement_id


def transfer(space: Space, agreement_id: str, **extra: Any) -> dict[str, Any]:
    """The bank requests a transfer (``extra``: e.g. format and dataAddress for a push)."""
    started = httpx.post(
        f"{space.bank.base_url}/management/v1/transfers",
        headers=KEY,
        json={
            "counterPartyId": space.bureau.participant_id,
            "counterPartyAddress": f"{space.bureau.base_url}/dsp",
            "agreementId": agreement_id,
            **extra,
        },
    )
    assert started.status_code == 201, started.text
    view: dict[str, Any] = started.json()
    return view


def bank_transfer(space: Space, transfer_id: str) -> dict[str, Any]:
    view: dict[str, Any] = httpx.get(
        f"{space.bank.base_url}/management/v1/transfers/{transfer_id}", headers=KEY
    ).json()
    return view


def bureau_transfers(space: Space) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = httpx.get(
        f"{space.bureau.base_url}/management/v1/transfers", headers=KEY
    ).json()["items"]
    return items


def move(base_url: str, transfer_id: str, verb: str, **body: str) -> httpx.Response:
    return httpx.post(
        f"{base_url}/management/v1/transfers/{transfer_id}/{verb}", headers=KEY, json=body
    )


def unsettled(settings: ConnectorSettings) -> list[tuple[str, str, int, str | None]]:
    """A connector's outbox messages that are not sent: kind, status, attempts, last error."""
    engine = create_engine(settings.database_url)
    try:
        with Session(engine) as session:
            rows = session.exec(
                select(OutboxMessage).where(col(OutboxMessage.status) != Delivery.SENT)
            ).all()
            return [(row.kind, row.status, row.attempts, row.last_error) for row in rows]
    finally:
        engine.dispose()


def in_state(space: Space, transfer_id: str, state: str) -> None:
    def seen() -> object:
        """Both sides' views, with termination reasons and the outboxes' undelivered messages."""
        fields = ("state", "terminationCode", "terminationReason")
        return {
            "bank": [bank_transfer(space, transfer_id).get(field) for field in fields],
            "bureau": [
                [t.get(field) for field in fields]
                for t in bureau_transfers(space)
                if t["consumerPid"] == transfer_id
            ],
            "bank outbox": unsettled(space.bank),
            "bureau outbox": unsettled(space.bureau),
        }

    wait_for(lambda: bank_transfer(space, transfer_id)["state"] == state, seen=seen)
    wait_for(
        lambda: (
            [t["state"] for t in bureau_transfers(space) if t["consumerPid"] == transfer_id]
            == [state]
        ),
        seen=seen,
    )


def test_start_suspend_resume_complete(space: Space) -> None:
    view = transfer(space, agreed(space))
    in_state(space, view["id"], "STARTED")
    # the provider reads the transfer at the consumer's callback address
    seen = asyncio.run(
        call(
            space.bureau,
            space.bank.participant_id,
            f"{space.bank.base_url}/dsp/callback/transfers/{view['id']}",
        )
    )
    assert seen.status_code == 200
    assert seen.json()["state"] == "STARTED"
    assert errors("transfer/transfer-process-schema.json", seen.json()) == []

    assert (
        move(
            space.bank.base_url,
            view["id"],
            "suspend",
            code="maintenance",
            reason="the bank's system is down",
        ).status_code
        == 200
    )
    in_state(space, view["id"], "SUSPENDED")
    (provider,) = bureau_transfers(space)
    assert (provider["terminationCode"], provider["terminationReason"]) == (
        "maintenance",
        "the bank's system is down",
    )
    assert move(space.bank.base_url, view["id"], "resume").status_code == 200
    in_state(space, view["id"], "STARTED")
    assert move(space.bureau.base_url, provider["id"], "complete").status_code == 200
    in_state(space, view["id"], "COMPLETED")
    refused = move(space.bank.base_url, view["id"], "suspend")
    assert refused.status_code == 409
    assert refused.json()["reason"] == "illegal_transition"


def test_a_repeated_request_is_idempotent(space: Space) -> None:
    agreement_id = agreed(space)
    view = transfer(space, agreement_id)
    in_state(space, view["id"], "STARTED")
    request = {
        "@context": [DSP],
        "@type": "TransferRequestMessage",
        "consumerPid": view["id"],
        "agreementId": agreement_id,
        "format": "HttpData-PULL",
        "callbackAddress": f"{space.bank.base_url}/dsp/callback",
    }
    again = asyncio.run(
        call(
            space.bank,
            space.bureau.participant_id,
            f"{space.bureau.base_url}/dsp/transfers/request",
            method="POST",
            body=request,
        )
    )
    assert again.status_code == 200
    assert again.json()["state"] == "STARTED"
    assert len(bureau_transfers(space)) == 1


def test_an_unknown_agreement_is_refused(space: Space) -> None:
    agreed(space)
    missing = httpx.post(
        f"{space.bank.base_url}/management/v1/transfers",
        headers=KEY,
        json={
            "counterPartyId": space.bureau.participant_id,
            "counterPartyAddress": f"{space.bureau.base_url}/dsp",
            "agreementId": "urn:uuid:nope",
        },
    )
    assert missing.status_code == 404
    request = {
        "@context": [DSP],
        "@type": "TransferRequestMessage",
        "consumerPid": "urn:uuid:c-1",
        "agreementId": "urn:uuid:nope",
        "format": "HttpData-PULL",
        "callbackAddress": f"{space.bank.base_url}/dsp/callback",
    }
    refused = asyncio.run(
        call(
            space.bank,
            space.bureau.participant_id,
            f"{space.bureau.base_url}/dsp/transfers/request",
            method="POST",
            body=request,
        )
    )
    assert refused.status_code == 400
    assert refused.json()["code"] == "unknown_agreement"
    assert errors("transfer/transfer-error-schema.json", refused.json()) == []
    assert bureau_transfers(space) == []


def test_the_provider_terminates_and_the_consumer_keeps_code_and_reason(space: Space) -> None:
    view = transfer(space, agreed(space))
    in_state(space, view["id"], "STARTED")
    (provider,) = bureau_transfers(space)
    assert (
        move(
            space.bureau.base_url,
            provider["id"],
            "terminate",
            code="licence_revoked",
            reason="the bank's licence was revoked",
        ).status_code
        == 200
    )
    in_state(space, view["id"], "TERMINATED")
    consumer = bank_transfer(space, view["id"])
    assert (consumer["terminationCode"], consumer["terminationReason"]) == (
        "licence_revoked",
        "the bank's licence was revoked",
    )


def test_the_consumer_terminates_and_the_provider_keeps_code_and_reason(space: Space) -> None:
    view = transfer(space, agreed(space))
    in_state(space, view["id"], "STARTED")
    assert (
        move(
            space.bank.base_url,
            view["id"],
            "terminate",
            code="no_longer_needed",
            reason="the application was withdrawn",
        ).status_code
        == 200
    )
    in_state(space, view["id"], "TERMINATED")
    (provider,) = bureau_transfers(space)
    assert (provider["terminationCode"], provider["terminationReason"]) == (
        "no_longer_needed",
        "the application was withdrawn",
    )
