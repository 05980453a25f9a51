"""FastAPI dependencies of the ledger service: the only readers of ``app.state``, and who is
asking (a DCP-authenticated participant, a regulator when it holds a ``RegulatorCredential``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from sqlalchemy.engine import Engine

from identity.credentials import CredentialType
from identity.participant import Participant
from ledger.chain import AnchorRegistry
from ledger.settings import LedgerSettings


class LedgerError(Exception):
    """A refusal of the ledger service: status, reason code, message, and extra fields of the
    body (what was expected, say)."""

    def __init__(
        self, status: int, reason: str, message: str, *, retry_after_s: int | None = None,
        **extra: Any,
    ) -> None:  # fmt: skip
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.retry_after_s = retry_after_s
        self.extra = extra


def get_settings(request: Request) -> LedgerSettings:
    settings: LedgerSettings = request.app.state.settings
    return settings


def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def get_participant(request: Request) -> Participant:
    participant: Participant = request.app.state.participant
    return participant


def get_registry(request: Request) -> AnchorRegistry | None:
    registry: AnchorRegistry | None = request.app.state.registry
    return registry


@dataclass(frozen=True)
class Viewer:
    did: str
    regulator: bool
    """Holds a valid ``RegulatorCredential``: sees every participant's events."""

    def may_see(self, participant: str) -> bool:
        return self.regulator or participant == self.did


async def get_viewer(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> Viewer:
    """The caller, authenticated the DCP way (a failure is the identity layer's typed 401 or
    403); no token at all is 401 ``not_authenticated``."""
    if not authorization:
        raise LedgerError(
            401, "not_authenticated", "a DCP self-issued ID token is needed (Authorization: Bearer)"
        )
    peer = await get_participant(request).verifier.authenticate(authorization)
    return Viewer(peer.did, CredentialType.REGULATOR in peer.presentation.types())


SettingsDep = Annotated[LedgerSettings, Depends(get_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]
ParticipantDep = Annotated[Participant, Depends(get_participant)]
RegistryDep = Annotated[AnchorRegistry | None, Depends(get_registry)]
ViewerDep = Annotated[Viewer, Depends(get_viewer)]
