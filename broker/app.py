"""The broker's app factory (participant registry and federated catalog, as they arrive)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from broker.settings import BrokerSettings
from storage.engine import create_engine
from storage.health import check_health


def create_app(settings: BrokerSettings) -> FastAPI:
    engine = create_engine(settings.database_url)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        engine.dispose()

    app = FastAPI(title="Kexin broker", lifespan=lifespan)
    app.state.settings = settings
    app.state.engine = engine

    @app.get("/health", tags=["health"])
    def health() -> JSONResponse:
        report = check_health("broker", engine, None)
        return JSONResponse(report.body(), status_code=200 if report.ok else 503)

    return app
