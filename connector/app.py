"""The connector's app factory: settings in, FastAPI app out. Nothing is built at import time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from connector.audit import SqlAuditSink
from connector.database import migrations
from connector.settings import ConnectorSettings
from storage.engine import create_engine
from storage.health import check_health
from storage.migrate import upgrade


def create_app(settings: ConnectorSettings) -> FastAPI:
    engine = create_engine(settings.database_url)
    schema = migrations()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if settings.migrate_on_start:
            upgrade(engine, schema)
        yield
        engine.dispose()

    app = FastAPI(
        title="Kexin connector",
        summary=f"Dataspace connector of {settings.participant_id}",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.audit = SqlAuditSink(engine)

    @app.get("/health", tags=["health"])
    def health() -> JSONResponse:
        report = check_health("connector", engine, schema)
        return JSONResponse(report.body(), status_code=200 if report.ok else 503)

    return app
