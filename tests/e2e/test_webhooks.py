"""Webhooks: the data holder's application hears of every state change, signed the Standard
Webhooks way (its receiver verifies with the ``standardwebhooks`` library), in order, with
termination code and reason; a replayed or re-timed delivery is not acted on."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from standardwebhooks.webhooks import Webhook as StandardWebhook

from connector.webhooks import secret_key
from tests.e2e.space import Hooks, Space
from tests.e2e.test_negotiation import negotiate, ready, state_of, wait_for
from tests.participants import WEBHOOK_SECRET


def received(events: Hooks) -> list[dict[str, Any]]:
    """What the receiver accepted (it verified each delivery with the library before)."""
    return [json.loads(body) for _, body in events]


def test_every_state_change_is_announced_and_signed(hooked_space: tuple[Space, Hooks]) -> None:
    space, events = hooked_space
    negotiation = negotiate(space, ready(space))
    wait_for(lambda: state_of(space.bank.base_url, negotiation["id"])["state"] == "FINALIZED")
    wait_for(lambda: any(e["state"] == "FINALIZED" for e in received(events)))
    states = [e["state"] for e in received(events) if e["id"] == negotiation["id"]]
    # the consumer verifies in the same step as it accepts the agreement: AGREED is not separate
    assert states == ["REQUESTED", "VERIFIED", "FINALIZED"]
    final = received(events)[-1]
    assert final["type"] == "kexin.negotiation.state"
    assert final["agreementId"] == state_of(space.bank.base_url, negotiation["id"])["agreementId"]


def test_a_termination_carries_its_code_and_reason(hooked_space: tuple[Space, Hooks]) -> None:
    space, events = hooked_space
    offer = copy.deepcopy(ready(space))
    offer["permission"][0]["constraint"][3]["rightOperand"] = "30"
    negotiation = negotiate(space, offer)
    wait_for(lambda: any(e["state"] == "TERMINATED" for e in received(events)))
    terminated = next(
        e for e in received(events) if e["id"] == negotiation["id"] and e["state"] == "TERMINATED"
    )
    assert terminated["terminationCode"] == "delivery_failed"
    assert "tampered_offer" in terminated["terminationReason"]


def test_a_replay_or_an_old_delivery_is_not_acted_on(hooked_space: tuple[Space, Hooks]) -> None:
    space, events = hooked_space
    negotiation = negotiate(space, ready(space))
    wait_for(lambda: any(e["state"] == "FINALIZED" for e in received(events)))
    ids = [headers["webhook-id"] for headers, _ in events]
    assert len(ids) == len(set(ids))  # each event has its own id
    headers, body = events[0]
    hook = space.bank.webhook_url
    assert hook is not None
    count = len(events)
    wanted = ("webhook-id", "webhook-timestamp", "webhook-signature", "content-type")
    sent = {k: v for k, v in headers.items() if k in wanted}
    replay = httpx.post(hook, content=body, headers=sent)
    assert replay.status_code == 200
    assert replay.json() == {"ignored": "webhook-id already received"}
    # signed correctly but ten minutes ago, under a new id: the library refuses the timestamp
    old = datetime.now(UTC) - timedelta(minutes=10)
    signer = StandardWebhook(secret_key(WEBHOOK_SECRET))
    stale = {
        "webhook-id": "msg_stale",
        "webhook-timestamp": str(int(old.timestamp())),
        "webhook-signature": signer.sign("msg_stale", old, body.decode()),
    }
    refused = httpx.post(hook, content=body, headers=stale)
    assert refused.status_code == 400
    assert "too old" in refused.json()["refused"]
    # and a changed body does not match its signature
    forged = httpx.post(hook, content=body.replace(b'"role"', b'"rolE"'), headers=sent)
    assert forged.status_code == 400
    assert len(events) == count
    assert negotiation["id"] in {e["id"] for e in received(events)}
