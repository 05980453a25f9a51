"""Conformance-testing mode, as one extension the app loads only when the mode is on: the kit's
static token and participant (``peer``), its initiation webhooks (``routes``), the scenario
driver (``driver``) and the fixtures the scenarios expect (``fixtures``). With the mode off,
nothing here is imported and none of it exists."""

from __future__ import annotations

from collections.abc import Coroutine
from datetime import datetime
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.engine import Engine

from connector.conformance import fixtures
from connector.conformance.driver import Driver
from connector.conformance.peer import KitAuthentication, kit_peer
from connector.conformance.routes import ConformanceError, router
from connector.negotiation.process import Negotiations
from connector.settings import ConnectorSettings
from connector.transfer.process import Transfers
from identity.verifier import Peer


class Conformance:
    def __init__(self, settings: ConnectorSettings) -> None:
        token, kit = settings.conformance_token, settings.conformance_participant_id
        if token is None or kit is None:
            raise ValueError("conformance mode needs conformance_token and its participant")
        self.kit = kit
        self._authentication = KitAuthentication(
            token.get_secret_value(), kit_peer(kit, settings.conformance_credentials)
        )
        self.driver = Driver()
        self.router: APIRouter = router

    def install(self, app: FastAPI) -> None:
        async def conformance_error(_request: Request, error: Exception) -> JSONResponse:
            assert isinstance(error, ConformanceError)  # noqa: S101 - registered for this type
            return error.response()

        app.add_exception_handler(ConformanceError, conformance_error)
        app.include_router(self.router)

    def authenticate(self, authorization: str | None) -> Peer | None:
        return self._authentication.authenticate(authorization)

    def start(
        self,
        *,
        engine: Engine,
        me: str,
        negotiations: Negotiations,
        transfers: Transfers,
        now: datetime,
    ) -> Coroutine[Any, Any, None]:
        """Load the fixtures; the driver's worker, for the app to run while it serves."""
        fixtures.load(engine, me, self.kit, now)
        self.driver.negotiations, self.driver.transfers = negotiations, transfers
        return self.driver.run()
