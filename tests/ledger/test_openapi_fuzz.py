"""The fuzz guard (tests.openapi_fuzz) over the ledger service's API."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from ledger.app import create_app
from ledger.settings import LedgerSettings
from tests.ledger.pushes import PASSPHRASE
from tests.openapi_fuzz import Case, check, schema_of, unbounded_numbers


def settings(database_url: str) -> LedgerSettings:
    return LedgerSettings(
        ledger_id="did:web:127.0.0.1%3A8383:ledger",
        database_url=database_url,
        key_passphrase=PASSPHRASE,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    folder = tmp_path_factory.mktemp("ledger")
    with TestClient(create_app(settings(f"sqlite:///{folder / 'ledger.db'}"))) as client:
        yield client


SCHEMA = schema_of(create_app(settings("sqlite://")), headers={}, max_examples=20)


@SCHEMA.parametrize()
def test_the_ledger_api_answers_only_what_it_documents(case: Case, ledger: TestClient) -> None:
    check(ledger, case)


def test_every_number_the_ledger_api_takes_is_bounded() -> None:
    assert unbounded_numbers(SCHEMA) == []
