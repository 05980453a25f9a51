"""The ledger service's app factory: the regulator's service over the participants' batches
(:mod:`ledger.routes`), its own DID document (it verifies DCP callers as a participant does),
and its health.

The ledger itself (hashing, Merkle batches, anchoring) is a library in this package; this module
and the routes are only its HTTP face.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from identity.credentials import TrustedIssuers
from identity.database import migrations as identity_migrations
from identity.participant import build_participant
from identity.resolver import did_web_url
from ledger.chain import Chain
from ledger.database import migrations
from ledger.routes import LedgerError, ParticipantDep, router
from ledger.settings import LedgerSettings
from service.http import error_body, install_error_handlers
from service.refusals import NOT_READY
from service.transport import guarded_transport
from storage.engine import create_engine
from storage.health import check_health
from storage.migrate import require_current, upgrade


def utc_now() -> datetime:
    return datetime.now(UTC)


def did_document(participant: ParticipantDep) -> dict[str, Any]:
    """The ledger service's DID document (its keys: callers' Credential Services check the
    tokens it sends them)."""
    return participant.keyring.document(()).to_json()


def create_app(
    settings: LedgerSettings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    chain: Chain | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> FastAPI:
    """``chain``: the chain to read anchors from (tests pass web3's in-process chain); by
    default a JSON-RPC connection to ``settings.chain_url``."""
    engine = create_engine(settings.database_url)
    schemas = (migrations(), identity_migrations())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.migrate_on_start:
            for schema in schemas:
                upgrade(engine, schema)
        else:
            require_current(engine, schemas, "dataspace ledger db-upgrade")
        connected = chain or Chain.connect(settings.chain_url, timeout_s=settings.chain_timeout_s)
        app.state.registry = (
            None
            if settings.registry_address is None
            else connected.registry(settings.registry_address, check_code=False)
        )
        async with httpx.AsyncClient(
            transport=transport or guarded_transport(settings.destinations),
            timeout=settings.http_timeout_s,
        ) as client:
            app.state.participant = build_participant(
                did=settings.ledger_id,
                engine=engine,
                passphrase=settings.key_passphrase.get_secret_value(),
                client=client,
                trusted=TrustedIssuers(
                    {kind: frozenset(dids) for kind, dids in settings.trusted_issuers.items()}
                ),
                required=(),
                destinations=settings.destinations,
                status_ttl=timedelta(seconds=settings.status_list_ttl_s),
                clock=clock,
                key_type=settings.key_type,
                key_cost=settings.key_cost,
            )
            yield
        engine.dispose()

    app = FastAPI(title="Kexin ledger", summary="The regulator's audit ledger", lifespan=lifespan)
    app.state.settings = settings
    app.state.engine = engine
    install_error_handlers(app, max_body_bytes=settings.max_body_bytes)

    async def ledger_error(_request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, LedgerError)  # noqa: S101 - registered for this type only
        headers = None
        if error.retry_after_s is not None:
            headers = {"Retry-After": str(error.retry_after_s)}
        elif error.status == 401:
            headers = {"WWW-Authenticate": "Bearer"}
        body = error_body("LedgerError", error.reason, error.message) | error.extra
        return JSONResponse(body, status_code=error.status, headers=headers)

    app.add_exception_handler(LedgerError, ledger_error)
    app.include_router(router)
    if settings.ledger_id.startswith("did:web:"):
        path = urlsplit(did_web_url(settings.ledger_id)).path
        app.add_api_route(path, did_document, methods=["GET"], tags=["identity"])

    @app.get("/health", tags=["health"], responses=NOT_READY)
    def health() -> JSONResponse:
        report = check_health("ledger", engine, schemas)
        return JSONResponse(report.body(), status_code=200 if report.ok else 503)

    return app
