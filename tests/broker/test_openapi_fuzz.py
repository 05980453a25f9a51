"""The fuzz guard (tests.openapi_fuzz) over the broker's API: the authority's public routes and
the operator's admin API (with its key)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from broker.app import create_app
from broker.settings import BrokerSettings
from tests.openapi_fuzz import NO_NETWORK, Case, check, schema_of, unbounded_numbers
from tests.participants import ADMIN_KEY, PASSPHRASE


def settings(database_url: str) -> BrokerSettings:
    return BrokerSettings(
        authority_id="did:web:127.0.0.1%3A8180:authority",
        database_url=database_url,
        key_passphrase=SecretStr(PASSPHRASE),
        admin_api_key=SecretStr(ADMIN_KEY),
    )


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    folder = tmp_path_factory.mktemp("broker")
    app = create_app(settings(f"sqlite:///{folder / 'broker.db'}"), transport=NO_NETWORK)
    with TestClient(app) as client:
        yield client


SCHEMA = schema_of(
    create_app(settings("sqlite://")), headers={"X-Api-Key": ADMIN_KEY}, max_examples=50
)


@SCHEMA.parametrize()
def test_the_broker_api_answers_only_what_it_documents(case: Case, broker: TestClient) -> None:
    check(broker, case)


def test_every_number_the_broker_api_takes_is_bounded() -> None:
    assert unbounded_numbers(SCHEMA) == []
