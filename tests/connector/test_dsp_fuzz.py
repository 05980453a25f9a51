"""Whatever arrives at a DSP endpoint, the answer is a 2xx or a typed 4xx, never a 500: mutated
official examples and arbitrary JSON, sent to every provider path and consumer callback (the
conformance-testing mode stands in for DCP so that the bodies reach the protocol code)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from connector.app import create_app
from connector.settings import ConnectorSettings
from tests.dsp_schemas import example
from tests.mutation import mutate
from tests.participants import ADMIN_KEY, PASSPHRASE

TOKEN = "conformance-token-0123456789"
PATHS = [
    "/dsp/catalog/request",
    "/dsp/negotiations/request",
    "/dsp/negotiations/urn:uuid:p/request",
    "/dsp/negotiations/urn:uuid:p/events",
    "/dsp/negotiations/urn:uuid:p/agreement/verification",
    "/dsp/negotiations/urn:uuid:p/termination",
    "/dsp/callback/negotiations/offers",
    "/dsp/callback/negotiations/urn:uuid:c/offers",
    "/dsp/callback/negotiations/urn:uuid:c/agreement",
    "/dsp/callback/negotiations/urn:uuid:c/events",
    "/dsp/callback/negotiations/urn:uuid:c/termination",
    "/dsp/transfers/request",
    "/dsp/transfers/urn:uuid:p/start",
    "/dsp/transfers/urn:uuid:p/completion",
    "/dsp/transfers/urn:uuid:p/suspension",
    "/dsp/transfers/urn:uuid:p/termination",
    "/dsp/callback/transfers/urn:uuid:c/start",
    "/dsp/callback/transfers/urn:uuid:c/termination",
]
EXAMPLES = [
    example(name)
    for name in (
        "negotiation/contract-request-message_initial.json",
        "negotiation/contract-offer-message.json",
        "negotiation/contract-agreement-message-full.json",
        "negotiation/contract-negotiation-event-message.json",
        "negotiation/contract-negotiation-termination-message.json",
        "transfer/transfer-request-message.json",
        "transfer/transfer-start-message.json",
        "transfer/transfer-termination-message.json",
        "catalog/catalog-request-message.json",
    )
]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.text(max_size=30),
    st.sampled_from(
        ["urn:uuid:p", "urn:uuid:c", "http://127.0.0.1:1/cb", "ACCEPTED", "FINALIZED", "use"]
    ),
)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=15), inner, max_size=4)
    ),
    max_leaves=20,
)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    folder: Path = tmp_path_factory.mktemp("fuzz")
    configured = ConnectorSettings(
        participant_id="did:web:127.0.0.1%3A8181:bureau",
        database_url=f"sqlite:///{folder / 'c.db'}",
        key_passphrase=SecretStr(PASSPHRASE),
        management_api_key=SecretStr(ADMIN_KEY),
        conformance_token=SecretStr(TOKEN),
        conformance_participant_id="did:web:tck.example",
    )
    with TestClient(create_app(configured)) as test_client:
        yield test_client


def check(client: TestClient, path: str, body: Any) -> None:
    response = client.post(path, json=body, headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code < 500, (path, body, response.text)
    if response.status_code >= 400:
        assert isinstance(response.json(), dict)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.sampled_from(PATHS),
    st.sampled_from(range(len(EXAMPLES))),
    st.lists(st.integers(0, 9), max_size=5),
    JSON,
)
def test_mutated_examples_never_give_500(
    client: TestClient, path: str, which: int, where: list[int], value: Any
) -> None:
    check(client, path, mutate(copy.deepcopy(EXAMPLES[which]), where, value))


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.sampled_from(PATHS), JSON)
def test_arbitrary_json_never_gives_500(client: TestClient, path: str, body: Any) -> None:
    check(client, path, body)
