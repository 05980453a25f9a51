"""The kit's own side, checked without a connector: the callback endpoint's dispatch and 404,
the HTTP client's judging and retries, the message checks, the kit's state machines, and that
a pipeline fails — naming the scenario, the step and the body — where the kit fails."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.conformance import messages
from tests.conformance.callbacks import CallbackEndpoint, Reply
from tests.conformance.checks import CONTEXT, ScenarioError, checked, problems
from tests.conformance.client import KitClient
from tests.conformance.machines import KitNegotiation, KitStateError, NegotiationState, Role
from tests.conformance.negotiation import ProviderNegotiationPipeline
from tests.conformance.pipelines import Kit

Responder = Callable[[httpx.Request], httpx.Response]


@pytest.fixture
def endpoint() -> Iterator[CallbackEndpoint]:
    served = CallbackEndpoint()
    with served.serving():
        yield served


def _client(responder: Responder) -> KitClient:
    return KitClient("Bearer token", httpx.Client(transport=httpx.MockTransport(responder)))


def _counting(*statuses: int) -> tuple[Responder, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def respond(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(statuses[min(len(seen), len(statuses)) - 1])

    return respond, seen


# -- the callback endpoint


def test_a_message_without_a_handler_gets_404(endpoint: CallbackEndpoint) -> None:
    response = httpx.post(f"{endpoint.address}/negotiations/x/offers", json={})
    assert response.status_code == 404


def test_a_handler_answers_the_paths_its_pattern_matches(endpoint: CallbackEndpoint) -> None:
    endpoint.register("/negotiations/[^/]+/events", lambda raw: Reply(200, {"got": raw.decode()}))
    response = httpx.post(f"{endpoint.address}/negotiations/abc/events/", content=b"x")
    assert (response.status_code, response.json()) == (200, {"got": "x"})
    assert httpx.post(f"{endpoint.address}/negotiations/a/b/events").status_code == 404


def test_a_trailing_slash_pattern_stays_registered_as_in_the_kit(
    endpoint: CallbackEndpoint,
) -> None:
    endpoint.register("/negotiations/[^/]+/offers/", lambda raw: Reply(200))
    endpoint.deregister("/negotiations/[^/]+/offers/")
    assert httpx.post(f"{endpoint.address}/negotiations/n/offers").status_code == 200
    endpoint.deregister("/negotiations/[^/]+/agreement")
    endpoint.clear()
    assert httpx.post(f"{endpoint.address}/negotiations/n/offers").status_code == 404


# -- the HTTP client


def test_other_4xx_are_retried_three_times_in_all() -> None:
    respond, seen = _counting(409, 409, 200)
    started = time.monotonic()
    _client(respond).post("http://cut/dsp/x", {}, plain=True)
    assert len(seen) == 3
    assert time.monotonic() - started >= 0.6  # 200 ms, then 400 ms
    assert seen[0].headers["Authorization"] == "Bearer token"


def test_a_4xx_that_stays_fails_after_three_attempts() -> None:
    respond, seen = _counting(400)
    with pytest.raises(ScenarioError, match="Unexpected response code: 400"):
        _client(respond).post("http://cut/dsp/x", {}, plain=True)
    assert len(seen) == 3


@pytest.mark.parametrize(
    ("status", "expect_error", "problem"),
    [
        pytest.param(404, False, "Unexpected 404", id="404-fails-at-once"),
        pytest.param(500, False, "Unexpected response code: 500", id="5xx-fails-at-once"),
        pytest.param(404, True, "Unexpected 404", id="refusal-must-not-be-404"),
        pytest.param(200, True, "Expected to throw an error", id="refusal-must-not-succeed"),
        pytest.param(500, True, "Unexpected response code: 500", id="refusal-must-not-be-5xx"),
    ],
)
def test_post_judging(status: int, expect_error: bool, problem: str) -> None:
    respond, seen = _counting(status)
    with pytest.raises(ScenarioError, match=problem):
        _client(respond).post("http://cut/dsp/x", {}, expect_error=expect_error, plain=True)
    assert len(seen) == 1


def test_a_refusal_is_a_4xx_other_than_404() -> None:
    respond, seen = _counting(400)
    response = _client(respond).post("http://cut/dsp/x", {}, expect_error=True, plain=True)
    assert (response.status_code, len(seen)) == (400, 1)


@pytest.mark.parametrize("status", [404, 409, 500])
def test_a_get_must_succeed(status: int) -> None:
    respond, _ = _counting(status)
    with pytest.raises(ScenarioError):
        _client(respond).get("http://cut/dsp/negotiations/x")
    assert _client(respond).get("http://cut/x", expect_error=True).status_code == status


def test_every_dsp_answer_body_is_checked() -> None:
    def respond(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"state": "REQUESTED"})

    with pytest.raises(ScenarioError, match="expecting a @type attribute"):
        _client(respond).post("http://cut/dsp/negotiations/request", {})
    _client(respond).post("http://cut/conformance/negotiations/initiate", {}, plain=True)


# -- the message checks


KIT_MESSAGES: list[Any] = [
    pytest.param(messages.contract_request("c", "o", "t", "http://kit"), id="request"),
    pytest.param(messages.counter_offer("p", "c", "o", None, "TCK", "t"), id="counter"),
    pytest.param(messages.contract_offer("p", "c", "o", "TCK", "cut", "t"), id="offer"),
    pytest.param(
        messages.contract_agreement("p", "c", "a", "TCK", "cut", "t", "http://kit"), id="agreement"
    ),
    pytest.param(messages.verification("p", "c"), id="verification"),
    pytest.param(messages.negotiation_event("p", "c", "ACCEPTED"), id="event"),
    pytest.param(messages.negotiation_termination("p", "c", "1", "why"), id="termination"),
    pytest.param(messages.negotiation("p", "c", "OFFERED"), id="negotiation"),
    pytest.param(messages.transfer_request("c", "a", "HttpData-PULL", "http://kit"), id="tp"),
    pytest.param(messages.transfer_start("p", "c", messages.data_address()), id="start"),
    pytest.param(messages.transfer("p", "c", "STARTED"), id="transfer"),
    pytest.param(messages.catalog_request(), id="catalog-request"),
]


@pytest.mark.parametrize("message", KIT_MESSAGES)
def test_the_kits_own_messages_pass_its_checks(message: dict[str, Any]) -> None:
    assert problems(message) == []
    assert message["@id"] != messages.catalog_request()["@id"]


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        pytest.param({"@context": CONTEXT, "state": "REQUESTED"}, "@type", id="no-type"),
        pytest.param(
            {**messages.negotiation("p", "c", "REQUESTED"), "@context": CONTEXT[0]},
            "@context must be exactly",
            id="context-string",
        ),
        pytest.param(
            {**messages.negotiation("p", "c", "REQUESTED"), "state": "dspace:REQUESTED"},
            "state",
            id="prefixed-state",
        ),
        pytest.param(
            {k: v for k, v in messages.transfer("p", "c", "STARTED").items() if k != "state"},
            "Invalid message",
            id="schema",
        ),
        pytest.param(
            {**messages.transfer("p", "c", "STARTED"), "dspace:state": "STARTED"},
            "prefixed",
            id="prefixed-term",
        ),
    ],
)
def test_the_checks_refuse(body: dict[str, Any], problem: str) -> None:
    with pytest.raises(ScenarioError, match=problem) as failure:
        checked(body, "answer")
    assert '"@type"' in str(failure.value) or "@type" not in body


def test_a_policy_profile_list_validates_despite_the_schema_copy_quirk() -> None:
    offer = messages.contract_offer("p", "c", "o", "TCK", "cut", "t")
    offer["offer"]["profile"] = ["https://example.com/profile"]
    assert problems(offer) == []


# -- the kit's state machine


def test_the_kit_refuses_moves_its_table_lacks() -> None:
    negotiation = KitNegotiation(Role.CONSUMER, "http://cut", "o", "d")
    with pytest.raises(KitStateError, match="Correlation id not set"):
        negotiation.transition(NegotiationState.OFFERED)
    negotiation.correlate("p", NegotiationState.REQUESTED)
    negotiation.transition(NegotiationState.TERMINATED)
    with pytest.raises(KitStateError, match="final state"):
        negotiation.transition(NegotiationState.TERMINATED)


# -- pipelines


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client


def _fake_connector(endpoint: CallbackEndpoint, answer: Reply, http: httpx.Client) -> Kit:
    """The endpoint plays both sides: the connector's request path, and the kit's callbacks."""
    endpoint.register("/dsp/negotiations/request", lambda raw: answer)
    config = {
        "dataspacetck.dsp.connector.http.url": f"{endpoint.address}/dsp",
        "dataspacetck.callback.address": endpoint.address,
    }
    return Kit(endpoint, KitClient("Bearer t", http), config, wait_s=0.3)


def test_a_wait_times_out_naming_the_scenario_and_step(
    endpoint: CallbackEndpoint, http: httpx.Client
) -> None:
    answer = Reply(201, messages.negotiation("cut-pid", "ignored", "REQUESTED"))
    kit = _fake_connector(endpoint, answer, http)
    pipeline = (
        ProviderNegotiationPipeline(kit, "CN:01-01")
        .expect_offer_message()
        .send_request_message("ACN0101", "offer-1")
        .then_wait_for_state(NegotiationState.OFFERED)
    )
    with pytest.raises(ScenarioError, match=r"CN:01-01, step 3 \(wait for .*OFFERED\)"):
        pipeline.execute()


def test_an_answer_without_type_fails_with_its_body(
    endpoint: CallbackEndpoint, http: httpx.Client
) -> None:
    kit = _fake_connector(endpoint, Reply(201, {"providerPid": "x"}), http)
    pipeline = ProviderNegotiationPipeline(kit, "CN:02-02").send_request_message("d", "o")
    with pytest.raises(ScenarioError) as failure:
        pipeline.execute()
    text = str(failure.value)
    assert "CN:02-02, step 1 (sendRequestMessage)" in text
    assert "expecting a @type attribute" in text
    assert '{"providerPid": "x"}' in text


def test_an_invalid_callback_fails_the_wait_at_once(
    endpoint: CallbackEndpoint, http: httpx.Client
) -> None:
    answer = Reply(201, messages.negotiation("cut-pid", "ignored", "REQUESTED"))
    kit = _fake_connector(endpoint, answer, http)
    kit.wait_s = 10.0
    pipeline = ProviderNegotiationPipeline(kit, "CN:01-01")
    invalid = {"@type": "ContractOfferMessage", "@context": CONTEXT, "providerPid": "cut-pid"}

    def send_invalid_offer() -> None:
        response = httpx.post(f"{endpoint.address}/negotiations/x/offers", json=invalid)
        assert response.status_code == 400

    started = time.monotonic()
    with pytest.raises(ScenarioError, match="Invalid message") as failure:
        (
            pipeline.expect_offer_message()
            .send_request_message("ACN0101", "offer-1")
            .then("the connector offers", send_invalid_offer)
            .then_wait_for_state(NegotiationState.OFFERED)
            .execute()
        )
    assert time.monotonic() - started < 5
    assert "step 4" in str(failure.value)
    assert '"providerPid": "cut-pid"' in str(failure.value)
