"""The ledger service's app factory: the regulators' API over the audit ledger, as it arrives.

The ledger itself (hashing, Merkle batches, anchoring) is a library in this package; this module
is only its HTTP face.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from ledger.settings import LedgerSettings
from service.refusals import NOT_READY
from storage.engine import create_engine
from storage.health import check_health


def create_app(settings: LedgerSettings) -> FastAPI:
    engine = create_engine(settings.database_url)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        engine.dispose()

    app = FastAPI(title="Kexin ledger", lifespan=lifespan)
    app.state.settings = settings
    app.state.engine = engine

    @app.get("/health", tags=["health"], responses=NOT_READY)
    def health() -> JSONResponse:
        report = check_health("ledger", engine, ())
        return JSONResponse(report.body(), status_code=200 if report.ok else 503)

    return app
