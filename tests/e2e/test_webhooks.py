"""Webhooks: the data holder's application hears of every state change, signed, in order, with
termination code and reason."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
from typing import Any

from tests.e2e.space import Hooks, Space
from tests.e2e.test_negotiation import negotiate, ready, state_of, wait_for
from tests.participants import WEBHOOK_SECRET


def received(events: Hooks) -> list[dict[str, Any]]:
    bodies = []
    for headers, body in events:
        expected = "sha256=" + hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert headers["x-kexin-signature"] == expected
        bodies.append(json.loads(body))
    return bodies


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
