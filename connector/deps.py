"""FastAPI dependencies of the connector: the only readers of ``app.state``."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Final, Protocol, TypeVar

from fastapi import Depends, Header, Request, Security
from fastapi.security import APIKeyHeader
from sqlalchemy.engine import Engine

from connector.audit import AuditSink
from connector.dataplane.matchsets import MatchingSets
from connector.dataplane.sources import SourceRules, sqlite_files
from connector.management.edrs import Edrs
from connector.negotiation.process import Negotiations
from connector.outbox import Outbox
from connector.protocol import DspError, DspMessage, MessageError
from connector.settings import ConnectorSettings
from connector.transfer.process import Transfers
from identity.errors import IdentityError, http_status
from identity.participant import Participant
from identity.verifier import Peer
from service.http import BadRequestError, read_json


# Dependencies are ``async def`` although none of them waits: FastAPI runs a plain ``def``
# dependency in a worker thread, a thread hop per dependency per request for an attribute read.
async def get_settings(request: Request) -> ConnectorSettings:
    settings: ConnectorSettings = request.app.state.settings
    return settings


def source_rules(settings: ConnectorSettings) -> SourceRules:
    """What data addresses this connector may serve: files in its data roots (never its own
    database files), HTTP backends on its source hosts, through its destination policy."""
    return SourceRules(
        data_roots=tuple(settings.data_roots),
        protected=sqlite_files([settings.database_url, *settings.sql_sources.values()]),
        http_hosts=frozenset(settings.http_source_hosts),
        destinations=settings.destinations,
    )


async def get_source_rules(request: Request) -> SourceRules:
    rules: SourceRules = request.app.state.source_rules
    return rules


async def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


async def get_participant(request: Request) -> Participant:
    participant: Participant = request.app.state.participant
    return participant


def peer_dependency(error_type: str) -> Callable[..., Awaitable[Peer]]:
    """A dependency that authenticates the calling participant the DCP way; a failure becomes
    a typed DSP error (``error_type``) with the identity layer's reason code."""

    async def authenticate(
        request: Request, authorization: Annotated[str | None, Header()] = None
    ) -> Peer:
        participant: Participant = request.app.state.participant
        conformance = conformance_peer(request, authorization)
        if conformance is not None:
            return conformance
        try:
            return await participant.verifier.authenticate(authorization)
        except IdentityError as error:
            raise DspError(
                http_status(error.reason), error_type, error.reason.value, error.message
            ) from None

    return authenticate


class ConformanceMode(Protocol):
    def authenticate(self, authorization: str | None) -> Peer | None: ...


def conformance_peer(request: Request, authorization: str | None) -> Peer | None:
    """In conformance-testing mode, the kit's static token is its participant; otherwise None
    and DCP decides."""
    mode: ConformanceMode | None = request.app.state.conformance
    return None if mode is None else mode.authenticate(authorization)


MANAGEMENT_KEY: Final = APIKeyHeader(
    name="X-Api-Key",
    scheme_name="ManagementApiKey",
    description="The management API's key (CONNECTOR_MANAGEMENT_API_KEY).",
    auto_error=False,
)
"""The management API's security scheme, declared in the OpenAPI (Swagger UI's Authorize)."""


async def require_manager(
    request: Request, x_api_key: Annotated[str | None, Security(MANAGEMENT_KEY)] = None
) -> None:
    settings: ConnectorSettings = request.app.state.settings
    configured = settings.management_api_key
    if configured is None:
        raise ManagementError(401, "disabled", "set CONNECTOR_MANAGEMENT_API_KEY to use this API")
    if x_api_key is None or not hmac.compare_digest(
        x_api_key.encode(), configured.get_secret_value().encode()
    ):
        raise ManagementError(401, "not_authorized", "the management API needs its X-Api-Key")


class ManagementError(Exception):
    """A refusal of the management API; ``extra`` adds fields to its typed body (e.g.
    ``usedBy``: what still uses a resource that cannot be deleted)."""

    def __init__(
        self, status: int, reason: str, message: str, extra: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message
        self.extra = extra or {}


async def get_negotiations(request: Request) -> Negotiations:
    negotiations: Negotiations = request.app.state.negotiations
    return negotiations


async def get_outbox(request: Request) -> Outbox:
    outbox: Outbox = request.app.state.outbox
    return outbox


async def get_matching_sets(request: Request) -> MatchingSets | None:
    """The provider's matching sets (None before the app has started)."""
    sets: MatchingSets | None = getattr(request.app.state, "matching_sets", None)
    return sets


async def get_edrs(request: Request) -> Edrs:
    edrs: Edrs = request.app.state.edrs
    return edrs


async def get_audit(request: Request) -> AuditSink:
    audit: AuditSink = request.app.state.audit
    return audit


async def get_transfers(request: Request) -> Transfers:
    transfers: Transfers = request.app.state.transfers
    return transfers


M = TypeVar("M", bound=DspMessage)


async def read_message(request: Request, model: type[M], error_type: str) -> M:
    """The body as a DSP message, or a typed DSP error (413 too large, 400 otherwise)."""
    try:
        settings: ConnectorSettings = request.app.state.settings
        body = await read_json(request, settings.max_body_bytes)
        return model.read(body)
    except BadRequestError as error:
        raise DspError(error.status, error_type, error.reason, error.message) from None
    except MessageError as error:
        raise DspError(400, error_type, "malformed_message", str(error)) from None


SettingsDep = Annotated[ConnectorSettings, Depends(get_settings)]
SourceRulesDep = Annotated[SourceRules, Depends(get_source_rules)]
TransfersDep = Annotated[Transfers, Depends(get_transfers)]
EdrsDep = Annotated[Edrs, Depends(get_edrs)]
OutboxDep = Annotated[Outbox, Depends(get_outbox)]
NegotiationsDep = Annotated[Negotiations, Depends(get_negotiations)]
EngineDep = Annotated[Engine, Depends(get_engine)]
AuditDep = Annotated[AuditSink, Depends(get_audit)]
MatchingSetsDep = Annotated[MatchingSets | None, Depends(get_matching_sets)]
ParticipantDep = Annotated[Participant, Depends(get_participant)]
