"""Webhooks: the data holder's application hears of every state change, signed the Standard
Webhooks way (its receiver verifies with the ``standardwebhooks`` library), in order, with
termination code and reason; a replayed or re-timed delivery is not acted on."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook as StandardWebhook
from standardwebhooks.webhooks import WebhookVerificationError

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


def test_a_request_names_its_own_callback_addresses(hooked_space: tuple[Space, Hooks]) -> None:
    """Besides the connector's webhook, a negotiation and a transfer started through the
    management API each name their own receivers (some states, or all), signed with the same
    secret; a receiver that is down delays neither the protocol nor the other receivers."""
    from dataspace.servers import bind, serve_in_thread
    from tests.e2e.space import receiver
    from tests.e2e.test_negotiation import KEY
    from tests.e2e.test_transfer import transfer

    space, events = hooked_space
    own: Hooks = []
    secrets: list[str] = []  # each address's own, as the answers give them
    down = bind()
    down_url = f"http://127.0.0.1:{down.getsockname()[1]}/hook"
    down.close()  # nothing listens there: its events wait, nothing else does
    # not verified yet (its secret is on its way): 503, and the outbox tries again
    with serve_in_thread(receiver(own, secrets, refused_with=503), bind()) as url:
        body = {
            "counterPartyId": space.bureau.participant_id,
            "counterPartyAddress": f"{space.bureau.base_url}/dsp",
            "offer": ready(space),
            "target": "urn:kexin:asset:firm-list",
            "purpose": "credit-assessment",
        }
        refused = [
            httpx.post(
                f"{space.bank.base_url}/management/v1/negotiations",
                headers=KEY,
                json={**body, "callbackAddresses": given},
            )
            for given in (
                [{"uri": f"{url}/hook", "states": ["DONE"]}],  # a state negotiations lack
                [{"uri": "http://10.1.2.3/hook"}],  # outside the allowed networks
                [{"uri": f"{url}/hook"}] * 6,  # more than five
            )
        ]
        assert [r.status_code for r in refused] == [400, 400, 422], [r.text for r in refused]
        assert [r.json().get("reason") for r in refused[:2]] == ["bad_callback"] * 2
        unsigned = httpx.post(
            f"{space.bureau.base_url}/management/v1/negotiations", headers=KEY,
            json={**body, "counterPartyId": space.bank.participant_id,
                  "callbackAddresses": [{"uri": f"{url}/hook"}]},
        )  # fmt: skip
        assert (unsigned.status_code, unsigned.json()["reason"]) == (409, "no_webhook_secret")

        started = httpx.post(
            f"{space.bank.base_url}/management/v1/negotiations", headers=KEY,
            json={**body, "callbackAddresses": [
                {"uri": f"{url}/hook", "states": ["FINALIZED", "TERMINATED"]}, {"uri": down_url},
            ]},
        )  # fmt: skip
        assert started.status_code == 201, started.text
        negotiation = started.json()
        mine, unreachable = negotiation["callbackAddresses"]
        assert (mine["uri"], mine["states"], unreachable["states"]) == (
            f"{url}/hook", ["FINALIZED", "TERMINATED"], None,
        )  # fmt: skip
        assert mine["secret"].startswith("whsec_")
        assert mine["secret"] != unreachable["secret"]
        secrets.append(mine["secret"])
        shown = state_of(space.bank.base_url, negotiation["id"])["callbackAddresses"]
        assert [c.get("secret") for c in shown] == [None, None]  # given once, never again
        wait_for(lambda: state_of(space.bank.base_url, negotiation["id"])["state"] == "FINALIZED")
        wait_for(lambda: len(own) == 1)
        [finalized] = received(own)
        assert (finalized["id"], finalized["state"]) == (negotiation["id"], "FINALIZED")
        wait_for(lambda: any(e["state"] == "FINALIZED" for e in received(events)))
        assert [e["state"] for e in received(events) if e["id"] == negotiation["id"]] == [
            "REQUESTED", "VERIFIED", "FINALIZED",
        ]  # fmt: skip

        agreement = state_of(space.bank.base_url, negotiation["id"])["agreementId"]
        moved = transfer(space, agreement, callbackAddresses=[{"uri": f"{url}/hook"}])
        secrets.append(moved["callbackAddresses"][0]["secret"])
        wait_for(
            lambda: any(e["id"] == moved["id"] and e["state"] == "STARTED" for e in received(own)),
            seen=lambda: [(e["type"], e["state"]) for e in received(own)],
        )
        assert [(e["type"], e["state"]) for e in received(own)][1:] == [
            ("kexin.transfer.state", "REQUESTED"), ("kexin.transfer.state", "STARTED"),
        ]  # fmt: skip
        # signed with the address's own secret: the connector's does not verify it, so a
        # receiver cannot sign for the connector's webhook or another address
        signed, delivered = own[0]
        with pytest.raises(WebhookVerificationError):
            StandardWebhook(secret_key(WEBHOOK_SECRET)).verify(delivered, signed)
        # the connector's webhook hears of the transfer's moves too (before: of its REQUESTED
        # alone, typed kexin.process.state: a later move was read back before its commit)
        wait_for(lambda: ("kexin.transfer.state", "STARTED") in
                 {(e["type"], e["state"]) for e in received(events)})  # fmt: skip
        bad_state = httpx.post(
            f"{space.bank.base_url}/management/v1/transfers", headers=KEY,
            json={"counterPartyId": space.bureau.participant_id, "agreementId": agreement,
                  "counterPartyAddress": f"{space.bureau.base_url}/dsp",
                  "callbackAddresses": [{"uri": f"{url}/hook", "states": ["FINALIZED"]}]},
        )  # fmt: skip
        assert (bad_state.status_code, bad_state.json()["reason"]) == (400, "bad_callback")
    pending = httpx.get(
        f"{space.bank.base_url}/management/v1/outbox", params={"status": "pending"}, headers=KEY
    )
    assert pending.status_code == 200, pending.text
    # the unreachable receiver's events wait, in their own order: nothing else does
    waiting = pending.json()["items"]
    assert {m["url"] for m in waiting} == {down_url}
    assert {m["processId"] for m in waiting} == {f"{negotiation['id']}#2"}
