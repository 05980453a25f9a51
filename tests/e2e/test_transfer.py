"""Transfer processes between two connectors over real HTTP, after a finalized agreement."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
from sqlmodel import Session, col, select

from connector.outbox import Delivery, OutboxMessage
from connector.settings import ConnectorSettings
from storage.engine import create_engine
from tests.dsp_schemas import errors
from tests.e2e.space import Space, call, calls_at_once
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


def test_the_same_request_twice_at_once_creates_one_process(space: Space) -> None:
    """A consumer that retries a request while the first is still being handled: one process
    is created, and the repeat gets the first answer (201, the same process), never a 500."""
    agreement_id = agreed(space)
    request = {
        "@context": [DSP],
        "@type": "TransferRequestMessage",
        "consumerPid": f"urn:uuid:{uuid.uuid4()}",
        "agreementId": agreement_id,
        "format": "HttpData-PULL",
        "callbackAddress": f"{space.bank.base_url}/dsp/callback",
    }

    url = f"{space.bureau.base_url}/dsp/transfers/request"
    for _ in range(10):
        request["consumerPid"] = f"urn:uuid:{uuid.uuid4()}"
        answers = asyncio.run(calls_at_once(space.bank, space.bureau.participant_id, url, request))
        assert [answer.status_code for answer in answers] == [201, 201]
        assert answers[0].json() == answers[1].json()
        made = [t for t in bureau_transfers(space) if t["consumerPid"] == request["consumerPid"]]
        assert len(made) == 1


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


def test_the_monitor_does_not_end_a_transfer_suspended_since_it_looked(space: Space) -> None:
    """The policy monitor read the transfer while STARTED and decides to end it; meanwhile the
    bank suspended it. The late decision is dropped: the transfer stays SUSPENDED (a resumption
    is decided again by the policy), instead of being ended for a state it was not judged in."""
    view = transfer(space, agreed(space))
    in_state(space, view["id"], "STARTED")
    assert move(space.bank.base_url, view["id"], "suspend").status_code == 200
    in_state(space, view["id"], "SUSPENDED")
    (provider,) = bureau_transfers(space)
    assert space.bureau_app is not None
    space.bureau_app.state.transfers.terminate_by_monitor(provider["id"], ["count spent"])
    (after,) = bureau_transfers(space)
    assert after["state"] == "SUSPENDED"
    assert bank_transfer(space, view["id"])["state"] == "SUSPENDED"
    # while STARTED, the same call ends it and tells the bank why
    assert move(space.bank.base_url, view["id"], "resume").status_code == 200
    in_state(space, view["id"], "STARTED")
    space.bureau_app.state.transfers.terminate_by_monitor(provider["id"], ["count spent"])
    in_state(space, view["id"], "TERMINATED")
    ended = bank_transfer(space, view["id"])
    assert (ended["terminationCode"], ended["terminationReason"]) == (
        "policy_monitor",
        "count spent",
    )


def test_two_moves_at_once_happen_one_after_the_other(space: Space) -> None:
    complete_and_terminate_at_once(space)


def complete_and_terminate_at_once(space: Space) -> None:
    """The bureau's operator completes and terminates the same transfers at the same moment:
    for each, exactly one move wins and the other is refused as illegal from the winner's
    state; one message reaches the bank, and both sides end in the winner's state."""
    agreement_id = agreed(space)
    views = [transfer(space, agreement_id) for _ in range(4)]
    for view in views:
        in_state(space, view["id"], "STARTED")
    providers = {t["consumerPid"]: t["id"] for t in bureau_transfers(space)}

    async def both(transfer_id: str) -> list[int]:
        base = f"{space.bureau.base_url}/management/v1/transfers/{transfer_id}"
        async with httpx.AsyncClient(headers=KEY, timeout=30) as client:
            answers = await asyncio.gather(
                client.post(f"{base}/complete", json={}),
                client.post(f"{base}/terminate", json={"code": "x", "reason": "y"}),
            )
        return [answer.status_code for answer in answers]

    for view in views:
        codes = asyncio.run(both(providers[view["id"]]))
        assert sorted(codes) == [200, 409], codes
        final = "COMPLETED" if codes[0] == 200 else "TERMINATED"
        in_state(space, view["id"], final)


def test_the_consumer_cannot_resume_what_the_provider_suspended(space: Space) -> None:
    """The bureau's operator suspends; the bank may not resume (its operator is told so, and
    a raw start message is refused by the bureau); the bureau resumes it."""
    view = transfer(space, agreed(space))
    in_state(space, view["id"], "STARTED")
    (provider,) = bureau_transfers(space)
    assert move(space.bureau.base_url, provider["id"], "suspend", reason="audit").status_code == 200
    in_state(space, view["id"], "SUSPENDED")
    refused = move(space.bank.base_url, view["id"], "resume")
    assert refused.status_code == 409, refused.text
    assert refused.json()["reason"] == "suspended_by_provider"
    forged = asyncio.run(
        call(
            space.bank,
            space.bureau.participant_id,
            f"{space.bureau.base_url}/dsp/transfers/{provider['id']}/start",
            method="POST",
            body={"@context": [DSP], "@type": "TransferStartMessage",
                  "providerPid": provider["id"], "consumerPid": view["id"]},
        )
    )  # fmt: skip
    assert forged.status_code == 400, forged.text
    assert forged.json()["code"] == "suspended_by_provider"
    assert bureau_transfers(space)[0]["state"] == "SUSPENDED"
    assert move(space.bureau.base_url, provider["id"], "resume").status_code == 200
    in_state(space, view["id"], "STARTED")
