"""The fuzz guard (tests.openapi_fuzz) over the connector's API: the management and data
contracts APIs with the operator's key, and the DSP, DCP and data-plane routes with the
conformance kit's token (conformance-testing mode stands in for DCP, so that requests get past
authentication to the protocol code)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from connector.app import create_app
from connector.settings import ConnectorSettings
from tests.openapi_fuzz import NO_NETWORK, Case, check, schema_of, unbounded_numbers
from tests.participants import ADMIN_KEY, PASSPHRASE

KIT = "did:web:127.0.0.1%3A8282:kit"
TOKEN = "conformance-token-0123456789"


def settings(database_url: str) -> ConnectorSettings:
    return ConnectorSettings(
        participant_id="did:web:127.0.0.1%3A8181:bank",
        database_url=database_url,
        key_passphrase=SecretStr(PASSPHRASE),
        management_api_key=SecretStr(ADMIN_KEY),
        conformance_token=SecretStr(TOKEN),
        conformance_participant_id=KIT,
    )


@pytest.fixture(scope="module")
def connector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    folder = tmp_path_factory.mktemp("connector")
    app = create_app(settings(f"sqlite:///{folder / 'connector.db'}"), transport=NO_NETWORK)
    with TestClient(app) as client:
        yield client


SCHEMA = schema_of(
    create_app(settings("sqlite://")),
    headers={"X-Api-Key": ADMIN_KEY, "Authorization": f"Bearer {TOKEN}"},
    max_examples=30,
)


@SCHEMA.parametrize()
def test_the_connector_api_answers_only_what_it_documents(
    case: Case, connector: TestClient
) -> None:
    check(connector, case)


def test_every_number_the_connector_api_takes_is_bounded() -> None:
    assert unbounded_numbers(SCHEMA) == []
