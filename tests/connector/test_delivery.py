"""Delivery until a deadline, not a count: a message the other side cannot take (down, 5xx) is
retried with capped, jittered backoff until its deadline (24 h by default), then given up: its
process is terminated and the termination is sent in its turn. The operator lists given-up
messages and sends one again. The connector's clock is moved forward instead of waiting."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from connector.app import create_app
from connector.catalog.offers import offer_id
from connector.outbox import OutboxMessage, backoff, enqueue
from storage.engine import create_engine
from tests.connector.test_conformance import (
    AUTH,
    DSP,
    KEY,
    KIT_BASE,
    OPEN,
    TCK,
    Kit,
    conformance_settings,
    kit_request,
    negotiation_state,
    publish,
    wait_for,
)

AGREEMENT = "/negotiations/urn:uuid:kit-1/agreement"
TERMINATION = "/negotiations/urn:uuid:kit-1/termination"
OFFER = {"@id": offer_id("open", OPEN), "target": OPEN, "@type": "Offer",
         "permission": [{"action": "use"}]}  # fmt: skip


class Clock:
    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


def failed(client: TestClient) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = client.get(
        "/management/v1/outbox", params={"status": "failed"}, headers=KEY
    ).json()["items"]
    return listed


def attempts_of(client: TestClient, kind: str) -> int:
    items = client.get("/management/v1/outbox", headers=KEY).json()["items"]
    count: int = next(m["attempts"] for m in items if m["kind"] == kind)
    return count


def start(
    tmp_path: Path, kit: Kit, clock: Clock, kit_id: str | None = None, **extra: Any
) -> TestClient:
    app = create_app(
        conformance_settings(tmp_path, **({"kit": kit_id} if kit_id else {}), **extra),
        transport=httpx.MockTransport(kit.handle),
        clock=clock,
    )
    return TestClient(app)


def test_a_peer_down_for_hours_is_retried_until_the_deadline_then_both_sides_hear_of_it(
    tmp_path: Path,
) -> None:
    down = {"agreement": True}
    kit = Kit(lambda path, _n: 503 if path == AGREEMENT and down["agreement"] else 200)
    clock = Clock()
    with start(tmp_path, kit, clock) as client:
        publish(client)
        pid = client.post(
            "/dsp/negotiations/request", json=kit_request(OFFER), headers=AUTH
        ).json()["providerPid"]
        outbox = client.app.state.outbox  # type: ignore[attr-defined]

        def tried(times: int) -> Callable[[], bool]:
            # recorded, not only received: the next retry's time is set by then
            return lambda: attempts_of(client, "negotiation.agreement") >= times

        wait_for(tried(1))

        for hour in range(1, 23):  # 22 hours: far more than any count of attempts would allow
            clock.offset = timedelta(hours=hour)
            outbox.wake()
            wait_for(tried(hour + 1))
        assert negotiation_state(client, pid) == "AGREED"
        assert failed(client) == []
        assert attempts_of(client, "negotiation.agreement") == 23

        clock.offset = timedelta(hours=24, minutes=1)
        outbox.wake()
        wait_for(lambda: negotiation_state(client, pid) == "TERMINATED")
        wait_for(lambda: TERMINATION in kit.paths())  # the other side hears of it
        (given_up,) = failed(client)
        assert given_up["kind"] == "negotiation.agreement"
        assert given_up["lastError"].startswith("503")
        assert "body" not in given_up  # bodies may carry tokens: never shown

        down["agreement"] = False  # the peer is back: the operator sends it again
        retried = client.post(f"/management/v1/outbox/{given_up['id']}/retry", headers=KEY)
        assert retried.status_code == 200, retried.text
        assert retried.json()["status"] == "pending"
        wait_for(lambda: failed(client) == [])
        again = client.post(f"/management/v1/outbox/{given_up['id']}/retry", headers=KEY)
        unknown = client.post("/management/v1/outbox/999999/retry", headers=KEY)
    assert again.status_code == 409
    assert unknown.status_code == 404
    assert kit.received[-1][0] == AGREEMENT
    assert kit.received[-1][2] == 200


def test_the_deadline_comes_from_settings(tmp_path: Path) -> None:
    kit = Kit(lambda path, _n: 503 if path == AGREEMENT else 200)
    clock = Clock()
    with start(tmp_path, kit, clock, delivery_deadline_s=60) as client:
        publish(client)
        pid = client.post(
            "/dsp/negotiations/request", json=kit_request(OFFER), headers=AUTH
        ).json()["providerPid"]
        wait_for(lambda: AGREEMENT in kit.paths())
        clock.offset = timedelta(seconds=61)
        client.app.state.outbox.wake()  # type: ignore[attr-defined]
        wait_for(lambda: negotiation_state(client, pid) == "TERMINATED")


def test_the_first_retry_wait_comes_from_settings(tmp_path: Path) -> None:
    """From 50 ms doubling, four attempts fit in a second and a half (from the default 0.5 s,
    the fourth comes after at least 1.75 s)."""
    kit = Kit(lambda path, _n: 503 if path == AGREEMENT else 200)
    with start(tmp_path, kit, Clock(), delivery_backoff_s=0.05) as client:
        publish(client)
        client.post("/dsp/negotiations/request", json=kit_request(OFFER), headers=AUTH)
        wait_for(lambda: AGREEMENT in kit.paths())
        began = time.monotonic()
        wait_for(lambda: attempts_of(client, "negotiation.agreement") >= 4, timeout_s=1.5)
    assert time.monotonic() - began < 1.5


def test_backoff_grows_is_capped_and_jittered() -> None:
    first = [backoff(1).total_seconds() for _ in range(200)]
    late = [backoff(40).total_seconds() for _ in range(200)]
    assert min(first) >= 0.25
    assert max(first) <= 0.5
    assert min(late) >= 30.0
    assert max(late) <= 60.0
    assert len(set(late)) > 100  # jittered, not one value


def test_a_later_message_never_overtakes_one_waiting_for_its_retry(tmp_path: Path) -> None:
    """The agreement waits for its retry (the peer answered 503); the operator terminates
    meanwhile: the termination waits behind the agreement, and both arrive in order."""
    down = {"agreement": True}
    kit = Kit(lambda path, _n: 503 if path == AGREEMENT and down["agreement"] else 200)
    clock = Clock()
    with start(tmp_path, kit, clock) as client:
        publish(client)
        pid = client.post(
            "/dsp/negotiations/request", json=kit_request(OFFER), headers=AUTH
        ).json()["providerPid"]
        wait_for(lambda: AGREEMENT in kit.paths())
        ended = client.post(
            f"/management/v1/negotiations/{pid}/terminate",
            headers=KEY,
            json={"code": "changed_mind", "reason": "by the operator"},
        )
        assert ended.status_code == 200, ended.text
        time.sleep(1.0)  # the termination is due at once; the agreement's retry is not
        assert TERMINATION not in kit.paths()
        down["agreement"] = False
        clock.offset = timedelta(minutes=5)
        client.app.state.outbox.wake()  # type: ignore[attr-defined]
        wait_for(lambda: TERMINATION in kit.paths())
    delivered = [path for path, _, status in kit.received if status == 200]
    assert delivered == [AGREEMENT, TERMINATION]


def test_a_sent_message_is_kept_without_its_tokens(tmp_path: Path) -> None:
    """The start message carries the data address's access and refresh tokens to the
    consumer; once sent, the outbox keeps it with both redacted."""
    kit = Kit()
    with start(tmp_path, kit, Clock(), kit_id=TCK) as client:
        response = client.post(
            "/dsp/transfers/request",
            headers=AUTH,
            json={"@context": [DSP], "@type": "TransferRequestMessage",
                  "consumerPid": "urn:uuid:kit-t1", "agreementId": "ATP0201",
                  "format": "HttpData-PULL", "callbackAddress": KIT_BASE},
        )  # fmt: skip
        assert response.status_code == 201, response.text
        wait_for(lambda: "/transfers/urn:uuid:kit-t1/start" in kit.paths())
        wait_for(lambda: all(m["status"] == "sent" for m in outbox_items(client)))
        engine = create_engine(str(client.app.state.settings.database_url))  # type: ignore[attr-defined]
        with Session(engine) as session:
            kept = [m.body for m in session.exec(select(OutboxMessage)).all()]
        engine.dispose()
    received = next(body for path, body, _ in kit.received if path.endswith("/start"))
    properties = {p["name"]: p["value"] for p in received["dataAddress"]["endpointProperties"]}
    assert properties["authorization"].count(".") == 2  # the real token reached the consumer
    assert properties["refreshToken"] not in ("", "[redacted]")
    (start_body,) = [json.loads(b) for b in kept if "TransferStartMessage" in b]
    stored = {p["name"]: p["value"] for p in start_body["dataAddress"]["endpointProperties"]}
    assert stored["authorization"] == stored["refreshToken"] == "[redacted]"
    assert properties["authorization"] not in "".join(kept)
    assert properties["refreshToken"] not in "".join(kept)


def outbox_items(client: TestClient) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = client.get("/management/v1/outbox", headers=KEY).json()["items"]
    return items


def test_messages_given_up_are_kept_without_their_tokens(tmp_path: Path) -> None:
    """A message refused for good is kept redacted, and so is each later message of its
    process that is given up with it, unsent (a start message's tokens among them)."""
    process = "urn:uuid:given-up"
    refused = f"/transfers/{process}/suspension"
    kit = Kit(lambda path, _n: 400 if path == refused else 200)
    with start(tmp_path, kit, Clock(), kit_id=TCK) as client:
        engine = create_engine(str(client.app.state.settings.database_url))  # type: ignore[attr-defined]
        with Session(engine) as session:
            for name, token in (("suspension", "first-secret-token"), ("start", "later-secret")):
                enqueue(
                    session, process_id=process, kind="test.given_up", audience=TCK,
                    url=f"{KIT_BASE}/transfers/{process}/{name}", now=datetime.now(UTC),
                    body={"dataAddress": {"endpointProperties": [
                        {"name": "authorization", "value": token},
                        {"name": "refreshToken", "value": f"refresh-{token}"},
                    ]}},
                )  # fmt: skip
            session.commit()
        client.app.state.outbox.wake()  # type: ignore[attr-defined]
        wait_for(lambda: [m["status"] for m in outbox_items(client)] == ["failed", "failed"])
        with Session(engine) as session:
            kept = [m.body for m in session.exec(select(OutboxMessage)).all()]
        engine.dispose()
    assert kit.paths() == [refused]  # the later one was never sent
    assert "secret" not in "".join(kept)
    assert all("[redacted]" in body for body in kept)
