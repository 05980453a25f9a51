"""The conformance-testing mode: off unless configured; when on, a static token stands for one
participant (an external test kit), the connector says so loudly, the kit's fixtures, webhooks
and scenario driver exist, and every other process behaves as always. The kit itself (the 65
scenarios, against a real server) is played in tests/conformance."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from connector.app import create_app
from connector.catalog.offers import offer_id
from connector.conformance.kit import properties, render
from connector.settings import ConnectorSettings
from tests.participants import ADMIN_KEY, PASSPHRASE

TOKEN = "conformance-token-0123456789"
KIT = "did:web:tck.example"
TCK = "TCK_PARTICIPANT"
ME = "did:web:127.0.0.1%3A8181:bureau"
DSP = "https://w3id.org/dspace/2025/1/context.jsonld"
REQUEST = {"@context": [DSP], "@type": "CatalogRequestMessage"}
AUTH = {"Authorization": f"Bearer {TOKEN}"}
KEY = {"X-Api-Key": ADMIN_KEY}
KIT_BASE = "http://kit.test/dsp"
OPEN = "urn:kexin:asset:open"


def settings(tmp_path: Path, **extra: Any) -> ConnectorSettings:
    return ConnectorSettings(
        participant_id=ME,
        database_url=f"sqlite:///{tmp_path / 'c.db'}",
        key_passphrase=SecretStr(PASSPHRASE),
        management_api_key=SecretStr(ADMIN_KEY),
        data_roots=[Path("/srv")],
        **extra,
    )


def conformance_settings(tmp_path: Path, kit: str = KIT, **extra: Any) -> ConnectorSettings:
    return settings(
        tmp_path, conformance_token=SecretStr(TOKEN), conformance_participant_id=kit, **extra
    )


def publish(client: TestClient) -> None:
    client.post(
        "/management/v1/assets",
        headers=KEY,
        json={
            "id": OPEN,
            "titleEn": "open data",
            "dataGrade": "general",
            "dataAddress": {"type": "file", "path": "/srv/open.csv"},
        },
    )
    client.post(
        "/management/v1/policydefinitions",
        headers=KEY,
        json={"id": "open", "policy": {"@type": "Set", "permission": [{"action": "use"}]}},
    )
    client.post(
        "/management/v1/contractdefinitions",
        headers=KEY,
        json={"id": "open", "accessPolicyId": "open", "contractPolicyId": "open"},
    )


class Kit:
    """The kit's callback side, in memory: records what the connector sends; answers
    ``status_for(path)`` (200 unless told otherwise), and 201 with a providerPid to requests."""

    def __init__(self, status_for: Callable[[str, int], int] | None = None) -> None:
        self.received: list[tuple[str, dict[str, Any], int]] = []
        self._status_for = status_for or (lambda _path, _count: 200)
        self._lock = threading.Lock()

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/dsp")
        body = json.loads(request.content)
        with self._lock:
            count = sum(1 for p, _, _ in self.received if p == path)
            status = self._status_for(path, count)
            self.received.append((path, body, status))
        if status != 200:
            return httpx.Response(status, json={"reason": "not yet"})
        if path.endswith("/request") and "providerPid" not in body:
            kind = "TransferProcess" if "/transfers/" in path else "ContractNegotiation"
            return httpx.Response(
                201,
                json={
                    "@context": [DSP],
                    "@type": kind,
                    "providerPid": "urn:uuid:kit-provider-pid",
                    "consumerPid": body["consumerPid"],
                    "state": "REQUESTED",
                },
            )
        return httpx.Response(200)

    def paths(self) -> list[str]:
        with self._lock:
            return [path for path, _, _ in self.received]


def app_with(settings_: ConnectorSettings, kit: Kit) -> TestClient:
    return TestClient(create_app(settings_, transport=httpx.MockTransport(kit.handle)))


def wait_for(check: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.02)


def kit_request(offer: dict[str, Any], consumer_pid: str = "urn:uuid:kit-1") -> dict[str, Any]:
    """A ContractRequestMessage as the DSP TCK writes it (no assigner, empty constraints)."""
    return {
        "@context": [DSP],
        "@id": "urn:uuid:random-message-id",
        "@type": "ContractRequestMessage",
        "consumerPid": consumer_pid,
        "offer": offer,
        "callbackAddress": KIT_BASE,
    }


def negotiation_state(client: TestClient, negotiation_id: str) -> str:
    response = client.get(f"/management/v1/negotiations/{negotiation_id}", headers=KEY)
    state: str = response.json()["state"]
    return state


@pytest.fixture
def conformance(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> Iterator[TestClient]:
    caplog.set_level(logging.WARNING, logger="kexin.connector")
    with TestClient(create_app(conformance_settings(tmp_path))) as client:
        publish(client)
        yield client


def test_the_static_token_stands_for_the_test_kit(
    conformance: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    response = conformance.post("/dsp/catalog/request", json=REQUEST, headers=AUTH)
    assert response.status_code == 200, response.text
    datasets = {d["@id"] for d in response.json()["dataset"]}
    assert {OPEN, "CAT0101", "CAT0102", "ACN0101"} <= datasets
    assert "CAT0103" not in datasets
    assert any(
        "CONFORMANCE-TESTING MODE IS ON" in r.getMessage() and KIT in r.getMessage()
        for r in caplog.get_records("setup")  # the app started in the fixture
    )


def test_another_token_is_not_accepted(conformance: TestClient) -> None:
    response = conformance.post(
        "/dsp/catalog/request",
        json=REQUEST,
        headers={"Authorization": "Bearer not-the-conformance-token"},
    )
    assert response.status_code == 401


def test_the_mode_is_off_unless_configured(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="kexin.connector")
    with TestClient(create_app(settings(tmp_path))) as client:
        publish(client)
        response = client.post("/dsp/catalog/request", json=REQUEST, headers=AUTH)
        initiate = client.post(
            "/conformance/negotiations/initiate",
            headers=AUTH,
            json={"datasetId": "ACNC0101", "offerId": "o", "providerId": TCK,
                  "connectorAddress": KIT_BASE},
        )  # fmt: skip
        assets = client.get("/management/v1/assets", headers=KEY).json()
    assert response.status_code == 401
    assert initiate.status_code == 404  # the webhooks do not exist
    assert [a["id"] for a in assets["items"]] == [OPEN]  # and no fixtures
    assert not any("CONFORMANCE" in r.getMessage() for r in caplog.records)


def test_token_and_participant_go_together(tmp_path: Path) -> None:
    with pytest.raises(
        ValueError, match="conformance_token and conformance_participant_id together"
    ):
        settings(tmp_path, conformance_token=SecretStr(TOKEN))


@pytest.mark.parametrize("kit", [TCK, KIT])
def test_the_kit_may_be_a_plain_identifier_or_a_did(tmp_path: Path, kit: str) -> None:
    assert conformance_settings(tmp_path, kit).conformance_participant_id == kit


@pytest.mark.parametrize("kit", ["TCK PARTICIPANT", "a/b", "", "did:nope"])
def test_other_kit_identifiers_are_refused(tmp_path: Path, kit: str) -> None:
    with pytest.raises(ValueError, match="conformance_participant_id"):
        conformance_settings(tmp_path, kit)


def test_a_request_without_assigner_means_this_provider(tmp_path: Path) -> None:
    """The kit's offer has @id, @type, target and permission; the schema requires no
    assigner. Absent, it is the provider; the request is agreed as usual."""
    kit = Kit()
    with app_with(conformance_settings(tmp_path), kit) as client:
        publish(client)
        offer = {"@id": offer_id("open", OPEN), "target": OPEN, "@type": "Offer",
                 "permission": [{"action": "use", "constraint": []}]}  # fmt: skip
        response = client.post("/dsp/negotiations/request", json=kit_request(offer), headers=AUTH)
        assert response.status_code == 201, response.text
        wait_for(lambda: "/negotiations/urn:uuid:kit-1/agreement" in kit.paths())


def test_another_assigner_is_still_a_tampering(tmp_path: Path) -> None:
    with app_with(conformance_settings(tmp_path), Kit()) as client:
        publish(client)
        offer = {"@id": offer_id("open", OPEN), "target": OPEN, "@type": "Offer",
                 "assigner": "did:web:someone.else", "permission": [{"action": "use"}]}  # fmt: skip
        response = client.post("/dsp/negotiations/request", json=kit_request(offer), headers=AUTH)
    assert response.status_code == 400
    assert response.json()["code"] == "tampered_offer"


def test_a_message_that_arrives_early_is_retried_not_failed(tmp_path: Path) -> None:
    """The kit answers 404 until it has registered its handler, the counter-party 409 until it
    has recorded its own step: the agreement is delivered on the third attempt, and the
    negotiation is not terminated for it."""
    agreement = "/negotiations/urn:uuid:kit-1/agreement"
    kit = Kit(lambda path, count: {0: 404, 1: 409}.get(count, 200) if path == agreement else 200)
    with app_with(conformance_settings(tmp_path), kit) as client:
        publish(client)
        offer = {"@id": offer_id("open", OPEN), "target": OPEN, "@type": "Offer",
                 "permission": [{"action": "use"}]}  # fmt: skip
        created = client.post("/dsp/negotiations/request", json=kit_request(offer), headers=AUTH)
        pid = created.json()["providerPid"]
        wait_for(lambda: kit.paths().count(agreement) == 3)
        time.sleep(0.3)  # a failure would terminate now
        assert negotiation_state(client, pid) == "AGREED"
        assert "/negotiations/urn:uuid:kit-1/termination" not in kit.paths()


def test_a_message_refused_for_good_still_ends_the_process(tmp_path: Path) -> None:
    agreement = "/negotiations/urn:uuid:kit-1/agreement"
    kit = Kit(lambda path, _count: 409 if path == agreement else 200)
    with app_with(conformance_settings(tmp_path), kit) as client:
        publish(client)
        offer = {"@id": offer_id("open", OPEN), "target": OPEN, "@type": "Offer",
                 "permission": [{"action": "use"}]}  # fmt: skip
        created = client.post("/dsp/negotiations/request", json=kit_request(offer), headers=AUTH)
        pid = created.json()["providerPid"]
        wait_for(lambda: negotiation_state(client, pid) == "TERMINATED")
    assert kit.paths().count(agreement) == 6  # EARLY_ATTEMPTS


def initiate_negotiation(client: TestClient, dataset: str) -> str:
    response = client.post(
        "/conformance/negotiations/initiate",
        headers=AUTH,
        json={"datasetId": dataset, "offerId": f"offer{dataset}", "providerId": TCK,
              "connectorAddress": KIT_BASE},
    )  # fmt: skip
    assert response.status_code == 200, response.text
    negotiation_id: str = response.json()["@id"]
    return negotiation_id


def kit_agreement(consumer_pid: str, dataset: str) -> dict[str, Any]:
    """A ContractAgreementMessage as the DSP TCK writes it: signed as TCK_PARTICIPANT."""
    return {
        "@context": [DSP],
        "@id": "urn:uuid:random-message-id",
        "@type": "ContractAgreementMessage",
        "providerPid": "urn:uuid:kit-provider-pid",
        "consumerPid": consumer_pid,
        "agreement": {
            "@type": "Agreement",
            "@id": "6c1f1d1e-agreement",
            "target": dataset,
            "permission": [{"action": "use", "constraint": []}],
            "timestamp": "2026-12-01T10:00:00Z",
            "assignee": ME,
            "assigner": TCK,
        },
        "callbackAddress": KIT_BASE,
    }


def test_the_consumer_accepts_an_agreement_signed_by_the_kit(tmp_path: Path) -> None:
    """The kit signs as TCK_PARTICIPANT; the conformance participant is that identifier. A
    dataset that is no scenario: the connector verifies at once, as always."""
    kit = Kit()
    with app_with(conformance_settings(tmp_path, TCK), kit) as client:
        negotiation = initiate_negotiation(client, "DS-1")
        wait_for(lambda: "/negotiations/request" in kit.paths())
        request = next(body for path, body, _ in kit.received if path == "/negotiations/request")
        assert request["offer"] == {
            "@id": "offerDS-1", "@type": "Offer", "permission": [{"action": "use"}],
            "assigner": TCK, "target": "DS-1",
        }  # fmt: skip
        assert request["callbackAddress"] == "http://127.0.0.1:8181/dsp/callback"
        response = client.post(
            f"/dsp/callback/negotiations/{negotiation}/agreement",
            json=kit_agreement(negotiation, "DS-1"),
            headers=AUTH,
        )
        assert response.status_code == 200, response.text
        assert response.json()["state"] == "VERIFIED"


def test_the_consumer_serves_its_negotiation_to_the_provider(tmp_path: Path) -> None:
    kit = Kit()
    with app_with(conformance_settings(tmp_path, TCK), kit) as client:
        negotiation = initiate_negotiation(client, "DS-1")
        wait_for(lambda: "/negotiations/request" in kit.paths())
        response = client.get(f"/dsp/callback/negotiations/{negotiation}", headers=AUTH)
        other = client.get(
            f"/dsp/callback/negotiations/{negotiation}", headers={"Authorization": "Bearer x"}
        )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "@context": [DSP], "@type": "ContractNegotiation", "state": "REQUESTED",
        "providerPid": "urn:uuid:kit-provider-pid", "consumerPid": negotiation,
    }  # fmt: skip
    assert other.status_code == 401


def test_a_process_not_acknowledged_yet_is_not_shown_with_an_empty_pid(tmp_path: Path) -> None:
    """Until the provider's answer to our request is recorded we do not know its pid: a GET
    waits for it a moment, then says so (409), never a 500 or an empty providerPid."""
    kit = Kit(lambda path, _count: 503 if path == "/transfers/request" else 200)
    with app_with(conformance_settings(tmp_path, TCK), kit) as client:
        response = client.post(
            "/conformance/transfers/initiate",
            headers=AUTH,
            json={"agreementId": "ATPC0101", "format": "HttpData-PULL", "providerId": TCK,
                  "connectorAddress": KIT_BASE},
        )  # fmt: skip
        assert response.status_code == 200, response.text
        transfer = response.json()["@id"]
        shown = client.get(f"/dsp/callback/transfers/{transfer}", headers=AUTH)
    assert shown.status_code == 409, shown.text
    assert shown.json()["@type"] == "TransferError"
    assert shown.json()["code"] == "not_acknowledged"
    assert shown.json()["consumerPid"] == transfer


def test_the_kit_holds_the_configured_credentials_so_the_monitor_keeps_its_transfer(
    tmp_path: Path,
) -> None:
    """A transfer with the kit is started (ATP0201: the driver starts it) and stays started
    over many runs of the policy monitor."""
    kit = Kit()
    configured = conformance_settings(tmp_path, TCK, monitor_interval_s=0.05)
    with app_with(configured, kit) as client:
        response = client.post(
            "/dsp/transfers/request",
            headers=AUTH,
            json={"@context": [DSP], "@type": "TransferRequestMessage",
                  "consumerPid": "urn:uuid:kit-t1", "agreementId": "ATP0201",
                  "format": "HttpData-PULL", "callbackAddress": KIT_BASE},
        )  # fmt: skip
        assert response.status_code == 201, response.text
        pid = response.json()["providerPid"]
        wait_for(lambda: "/transfers/urn:uuid:kit-t1/start" in kit.paths())
        time.sleep(0.5)  # ten monitor runs
        shown = client.get(f"/dsp/transfers/{pid}", headers=AUTH)
    assert shown.json()["state"] == "STARTED"
    assert "/transfers/urn:uuid:kit-t1/termination" not in kit.paths()


def test_webhooks_refuse_another_token_and_another_provider(tmp_path: Path) -> None:
    with app_with(conformance_settings(tmp_path, TCK), Kit()) as client:
        body = {"datasetId": "ACNC0101", "offerId": "o", "providerId": TCK,
                "connectorAddress": KIT_BASE}  # fmt: skip
        unauthorized = client.post(
            "/conformance/negotiations/initiate", json=body, headers={"Authorization": "x"}
        )
        stranger = client.post(
            "/conformance/negotiations/initiate",
            json={**body, "providerId": "did:web:other"},
            headers=AUTH,
        )
        malformed = client.post(
            "/conformance/transfers/initiate", json={"agreementId": 3}, headers=AUTH
        )
        unknown = client.post(
            "/conformance/transfers/initiate",
            json={"agreementId": "none", "format": "HttpData-PULL", "providerId": TCK,
                  "connectorAddress": KIT_BASE},
            headers=AUTH,
        )  # fmt: skip
    assert unauthorized.status_code == 401
    assert unauthorized.json()["type"] == "ConformanceError"
    assert stranger.status_code == 400
    assert malformed.status_code == 400
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "unknown_agreement"


def test_the_kit_configuration_names_every_scenario() -> None:
    config = properties("http://cut.test/", "http://kit.test", "Bearer t", ME)
    assert config["dataspacetck.dsp.connector.http.url"] == "http://cut.test/dsp"
    assert config["CN_01_01_DATASETID"] == "ACN0101"
    assert config["CN_01_01_OFFERID"] == offer_id("CD123", "ACN0101")
    assert config["CN_C_03_06_DATASETID"] == "ACNC0306"
    assert config["TP_03_06_AGREEMENTID"] == "ATP0306"
    assert config["TP_C_01_05_AGREEMENTID"] == "ATPC0105"
    assert config["CAT_01_03_DATASETID"] == "CAT0103"
    scenario_keys = {k.rsplit("_", 1)[0] for k in config if not k.startswith("dataspacetck")}
    assert len(scenario_keys) == 3 + 15 + 16 + 16 + 16  # with TP:02-04 and TP_C:02-04


def test_the_configuration_shown_in_the_docs_is_what_the_command_prints() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "conformance.md").read_text()
    block = docs.split("```properties\n", 1)[1].split("```", 1)[0]
    shown = [line.strip() for line in block.splitlines() if line.strip()]
    printed = render(
        properties(
            "http://cut.example:8181",
            "http://tck.example:8687",
            "Bearer a-long-random-token-for-the-kit",
            "did:web:cut.example%3A8181:cut",
        )
    ).splitlines()
    assert shown
    assert [line for line in shown if line not in printed] == []
