"""The broker's app factory: the data-space authority (credential issuance, revocation, trusted
issuers) now; the participant registry and federated catalogue as they arrive."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import anyio
import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from broker.authority.issuer import LIST_ID, Authority, AuthorityError
from broker.authority.routes import admin, did_document
from broker.authority.routes import router as authority_router
from broker.database import migrations
from broker.registry import routes as registry
from broker.registry.standing import RegistryError
from broker.search import routes as catalogue
from broker.search.client import CrawlLimits
from broker.search.crawler import Crawler
from broker.settings import BrokerSettings
from identity.credentials import CredentialType, TrustedIssuers
from identity.database import migrations as identity_migrations
from identity.participant import build_participant
from identity.resolver import did_web_url
from service.docs import NO_CDN_DOCS, serve_docs
from service.http import error_body, install_error_handlers
from service.refusals import NOT_READY
from service.transport import guarded_transport
from storage.engine import create_engine
from storage.health import check_health
from storage.migrate import require_current, upgrade

log = logging.getLogger("kexin.broker")


def utc_now() -> datetime:
    return datetime.now(UTC)


def crawl_limits(settings: BrokerSettings) -> CrawlLimits:
    return CrawlLimits(
        page_timeout_s=settings.crawl_page_timeout_s,
        total_timeout_s=settings.crawl_provider_timeout_s,
        max_pages=settings.crawl_max_pages,
        max_page_bytes=settings.crawl_max_page_bytes,
        max_datasets=settings.crawl_max_datasets,
    )


def create_app(
    settings: BrokerSettings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> FastAPI:
    engine = create_engine(settings.database_url)
    schemas = (migrations(), identity_migrations())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.warn_profile(log)
        if settings.migrate_on_start:
            for schema in schemas:
                upgrade(engine, schema)
        else:
            require_current(engine, schemas, "dataspace db upgrade broker")
        async with httpx.AsyncClient(
            transport=transport or guarded_transport(settings.destinations),
            timeout=settings.http_timeout_s,
        ) as client:
            participant = build_participant(
                did=settings.authority_id,
                engine=engine,
                passphrase=settings.key_passphrase.get_secret_value(),
                client=client,
                trusted=TrustedIssuers(
                    {kind: frozenset({settings.authority_id}) for kind in CredentialType}
                ),
                required=(),
                destinations=settings.destinations,
                status_ttl=timedelta(seconds=60),
                clock=clock,
                key_type=settings.key_type,
                key_cost=settings.key_cost,
            )
            app.state.participant = participant
            app.state.authority = Authority(
                engine=engine,
                participant=participant,
                client=client,
                allow={
                    did: (tuple(grant.types), grant.organisation.organisation())
                    for did, grant in settings.onboarding_allow.items()
                },
                validity=timedelta(days=settings.credential_validity_days),
                status_url=f"{settings.base_url}/status/{LIST_ID}",
                clock=clock,
            )
            app.state.crawler = None
            async with anyio.create_task_group() as tasks:
                if settings.organisation is not None:
                    authority = app.state.authority
                    organisation = settings.organisation.organisation()
                    authority.issue_own_membership(organisation)
                    app.state.crawler = crawler = Crawler(
                        engine=engine, participant=participant, client=client,
                        destinations=settings.destinations, limits=crawl_limits(settings),
                        grace=timedelta(seconds=settings.crawl_grace_s), clock=clock,
                    )  # fmt: skip
                    tasks.start_soon(crawler.follow_notices, settings.crawl_notice_settle_s)
                    if settings.crawl_interval_s > 0:
                        tasks.start_soon(
                            crawler.run,
                            settings.crawl_interval_s,
                            lambda: authority.issue_own_membership(organisation),
                        )
                yield
                tasks.cancel_scope.cancel()
        engine.dispose()

    app = FastAPI(
        title="Kexin broker", summary="Data-space authority", lifespan=lifespan, **NO_CDN_DOCS
    )
    serve_docs(app)
    app.state.settings = settings
    app.state.engine = engine
    install_error_handlers(app, max_body_bytes=settings.max_body_bytes)

    async def authority_error(_request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, AuthorityError)  # noqa: S101 - registered for this type only
        return JSONResponse(error_body("AuthorityError", error.reason, error.message), error.status)

    async def registry_error(_request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RegistryError)  # noqa: S101 - registered for this type only
        return JSONResponse(error_body("RegistryError", error.reason, error.message), error.status)

    app.add_exception_handler(AuthorityError, authority_error)
    app.add_exception_handler(RegistryError, registry_error)
    app.include_router(authority_router)
    app.include_router(admin)
    app.include_router(registry.admin)
    app.include_router(registry.members)
    app.include_router(catalogue.router)
    app.include_router(catalogue.admin)
    app.include_router(catalogue.dsp)
    if settings.authority_id.startswith("did:web:"):
        path = urlsplit(did_web_url(settings.authority_id)).path
        app.add_api_route(path, did_document, methods=["GET"], tags=["authority"])

    @app.get("/health", tags=["health"], responses=NOT_READY)
    def health() -> JSONResponse:
        report = check_health("broker", engine, schemas)
        return JSONResponse(report.body(), status_code=200 if report.ok else 503)

    return app
