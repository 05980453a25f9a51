"""A data space on loopback for multi-party tests: the authority and two connectors (a city
bureau and a bank) as real servers, with helpers to onboard and to call as a participant."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from standardwebhooks.webhooks import Webhook as StandardWebhook
from standardwebhooks.webhooks import WebhookVerificationError

from broker.app import create_app as create_broker
from connector.app import create_app as create_connector
from connector.dcp.client import request_credentials
from connector.participant import standalone
from connector.settings import ConnectorSettings
from connector.webhooks import secret_key
from dataspace.servers import bind, serve_in_thread
from identity.credentials import CredentialType
from identity.presentations import EVERY_SCOPE
from tests.participants import (
    BANK_ORG,
    BUREAU_ORG,
    WEBHOOK_SECRET,
    authority_settings,
    connector_settings,
    did_for,
)

TTL_S = 0.3


@dataclass
class Space:
    authority: str
    authority_url: str
    bureau: ConnectorSettings
    bank: ConnectorSettings
    bank_url: str
    bureau_app: FastAPI | None = None
    """The bureau's running connector, for tests that act as its own components do."""


@contextmanager
def start_space(
    tmp_path: Path,
    *,
    allow_list: bool,
    approval: str = "auto",
    bank_webhook: str | None = None,
    databases: tuple[str, str] | None = None,
    bank_verification: str = "auto",
    bureau_sql: dict[str, str] | None = None,
    bureau_extra: dict[str, object] | None = None,
    bank_extra: dict[str, object] | None = None,
) -> Iterator[Space]:
    """``databases``: the bureau's and the bank's database URLs (default: SQLite files);
    ``bureau_extra``, ``bank_extra``: more of their settings."""
    authority_sock, bureau_sock, bank_sock = bind(), bind(), bind()
    authority = did_for(authority_sock, "authority")
    bureau = connector_settings(
        bureau_sock,
        tmp_path,
        "bureau",
        authority,
        ttl_s=TTL_S,
        page_size=2,
        approval=approval,
        transfer_approval=approval,
        database_url=databases[0] if databases else None,
        sql_sources=bureau_sql,
    )
    if bureau_extra:
        bureau = bureau.model_copy(update=bureau_extra)
    bank = connector_settings(
        bank_sock,
        tmp_path,
        "bank",
        authority,
        ttl_s=TTL_S,
        webhook_url=bank_webhook,
        database_url=databases[1] if databases else None,
        verification=bank_verification,
    )
    if bank_extra:
        bank = bank.model_copy(update=bank_extra)
    allow = {
        bureau.participant_id: {"types": ["MembershipCredential", "PublicDataHolderCredential"], "organisation": BUREAU_ORG},
        bank.participant_id: {"types": ["MembershipCredential", "FinancialInstitutionCredential"], "organisation": BANK_ORG},
    } if allow_list else {}  # fmt: skip
    with ExitStack() as stack:
        authority_url = stack.enter_context(
            serve_in_thread(create_broker(authority_settings(authority_sock, tmp_path, allow)), authority_sock)
        )  # fmt: skip
        bureau_app = create_connector(bureau)
        stack.enter_context(serve_in_thread(bureau_app, bureau_sock))
        bank_url = stack.enter_context(serve_in_thread(create_connector(bank), bank_sock))
        yield Space(authority, authority_url, bureau, bank, bank_url, bureau_app)


@pytest.fixture
def space(tmp_path: Path) -> Iterator[Space]:
    with start_space(tmp_path, allow_list=True) as started:
        yield started


@pytest.fixture
def closed_space(tmp_path: Path) -> Iterator[Space]:
    """No allow-list: every request waits for the operator."""
    with start_space(tmp_path, allow_list=False) as started:
        yield started


async def onboard(settings: ConnectorSettings, authority: str, types: list[CredentialType]) -> dict[str, object]:  # fmt: skip
    async with standalone(settings) as (participant, client):
        return await request_credentials(participant, client, authority, types)


async def call(
    caller: ConnectorSettings, target: str, url: str, *, method: str = "GET", body: object = None
) -> httpx.Response:
    """``caller`` calls ``url`` on ``target`` with a fresh self-issued token (as its STS mints)."""
    async with standalone(caller) as (participant, client):
        token = participant.sts.bearer_for(target, EVERY_SCOPE)
        return await client.request(
            method, url, json=body, headers={"Authorization": f"Bearer {token}"}
        )


async def calls_at_once(
    caller: ConnectorSettings, target: str, url: str, body: object, times: int = 2
) -> list[httpx.Response]:
    """``caller`` POSTs ``body`` to ``url`` on ``target`` ``times`` at the same moment, each
    with its own token (a token is good for one request): a retry racing its original."""
    async with standalone(caller) as (participant, client):
        tokens = [participant.sts.bearer_for(target, EVERY_SCOPE) for _ in range(times)]
        return await asyncio.gather(
            *(
                client.post(url, json=body, headers={"Authorization": f"Bearer {token}"})
                for token in tokens
            )
        )


@pytest.fixture
def held_space(tmp_path: Path) -> Iterator[Space]:
    """The bureau holds every admitted contract request for a person to approve."""
    with start_space(tmp_path, allow_list=True, approval="manual") as started:
        yield started


Hooks = list[tuple[dict[str, str], bytes]]


def receiver(events: Hooks, secrets: list[str] | None = None, refused_with: int = 400) -> FastAPI:
    """The data holder's application, as Standard Webhooks asks a receiver to be: it verifies
    each delivery with the ``standardwebhooks`` library (signature, and a timestamp within five
    minutes) and records what it accepted; an id it has already accepted (a retry, or a replay)
    is answered 200 so that the sender stops, and not acted on again."""
    app = FastAPI()
    keys = [WEBHOOK_SECRET] if secrets is None else secrets  # ``secrets`` may grow meanwhile
    seen: set[str] = set()

    @app.post("/hook")
    async def hook(request: Request) -> JSONResponse:
        body, headers = await request.body(), dict(request.headers)
        refusal = "no secret"
        for key in keys:
            try:
                StandardWebhook(secret_key(key)).verify(body, headers)
                break
            except WebhookVerificationError as refused:
                refusal = str(refused)
        else:
            return JSONResponse({"refused": refusal}, status_code=refused_with)
        if headers["webhook-id"] in seen:
            return JSONResponse({"ignored": "webhook-id already received"})
        seen.add(headers["webhook-id"])
        events.append((headers, body))
        return JSONResponse({})

    return app


@pytest.fixture
def hooked_space(tmp_path: Path) -> Iterator[tuple[Space, Hooks]]:
    """The bank's connector tells its application (a receiver on loopback) of every change."""
    events: Hooks = []
    sock = bind()
    with (
        serve_in_thread(receiver(events), sock) as url,
        start_space(tmp_path, allow_list=True, bank_webhook=f"{url}/hook") as started,
    ):
        yield started, events


@pytest.fixture
def postgres_space(tmp_path: Path, postgres_admin_url: str) -> Iterator[Space]:
    """Both connectors on their own databases of a real PostgreSQL server."""
    import uuid

    from tests import postgres

    bureau = postgres.create_database(postgres_admin_url, f"bureau_{uuid.uuid4().hex[:12]}")
    bank = postgres.create_database(postgres_admin_url, f"bank_{uuid.uuid4().hex[:12]}")
    with start_space(tmp_path, allow_list=True, databases=(bureau, bank)) as started:
        yield started


@pytest.fixture
def manual_space(tmp_path: Path) -> Iterator[Space]:
    """People decide on both sides: the bureau holds requests, the bank verifies by hand."""
    with start_space(
        tmp_path, allow_list=True, approval="manual", bank_verification="manual"
    ) as started:
        yield started
