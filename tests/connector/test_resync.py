"""Re-synchronisation: a process that heard nothing for ``resync_after_s``, with nothing left
to send, asks the other side how it stands, and follows an end it missed (TERMINATED or unknown
there ends it here; FINALIZED there is taken over from VERIFIED); a process still going on at
the other side is left alone. The connector's clock is moved forward instead of waiting."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from connector.app import create_app
from tests.connector.test_conformance import (
    AUTH,
    KEY,
    TCK,
    Kit,
    conformance_settings,
    initiate_negotiation,
    kit_agreement,
    negotiation_state,
    wait_for,
)
from tests.connector.test_delivery import Clock


class AnsweringKit(Kit):
    """The kit, answering GETs of its processes with ``states[pid]`` (absent: 404)."""

    def __init__(self) -> None:
        super().__init__()
        self.states: dict[str, str] = {}
        self.asked: list[str] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.method != "GET":
            return super().handle(request)
        pid = request.url.path.rsplit("/", 1)[-1]
        self.asked.append(pid)
        if pid not in self.states:
            return httpx.Response(404, json={"reason": "unknown"})
        return httpx.Response(200, json={"state": self.states[pid]})


def verified_consumer(tmp_path: Path, kit: AnsweringKit, clock: Clock) -> tuple[TestClient, str]:
    app = create_app(
        conformance_settings(tmp_path, TCK, resync_after_s=10),
        transport=httpx.MockTransport(kit.handle),
        clock=clock,
    )
    client = TestClient(app)
    client.__enter__()
    negotiation = initiate_negotiation(client, "DS-1")
    wait_for(lambda: "/negotiations/request" in kit.paths())
    agreed = client.post(
        f"/dsp/callback/negotiations/{negotiation}/agreement",
        json=kit_agreement(negotiation, "DS-1"),
        headers=AUTH,
    )
    assert agreed.json()["state"] == "VERIFIED"
    wait_for(lambda: any(p.endswith("/agreement/verification") for p in kit.paths()))
    return client, negotiation


@pytest.mark.parametrize(
    ("theirs", "ours", "code"),
    [
        pytest.param("FINALIZED", "FINALIZED", None, id="finalized there"),
        pytest.param("TERMINATED", "TERMINATED", "ended_at_peer", id="terminated there"),
        pytest.param(None, "TERMINATED", "ended_at_peer", id="unknown there"),
        pytest.param("VERIFIED", "VERIFIED", None, id="still going on"),
    ],
)
def test_a_silent_process_asks_the_other_side_and_follows_an_end_it_missed(
    tmp_path: Path, theirs: str | None, ours: str, code: str | None
) -> None:
    kit, clock = AnsweringKit(), Clock()
    client, negotiation = verified_consumer(tmp_path, kit, clock)
    try:
        if theirs is not None:
            kit.states["urn:uuid:kit-provider-pid"] = theirs
        assert kit.asked == []  # not silent long enough yet
        clock.offset = timedelta(seconds=11)
        wait_for(lambda: "urn:uuid:kit-provider-pid" in kit.asked, timeout_s=10)
        if ours != "VERIFIED":
            wait_for(lambda: negotiation_state(client, negotiation) == ours)
        view: dict[str, Any] = client.get(
            f"/management/v1/negotiations/{negotiation}", headers=KEY
        ).json()
    finally:
        client.__exit__(None, None, None)
    assert view["state"] == ours
    assert view.get("terminationCode") == code
