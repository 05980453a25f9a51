"""FastAPI dependencies of the broker: the only readers of ``app.state``."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Header, Request
from sqlalchemy.engine import Engine

from broker.authority.issuer import Authority, AuthorityError
from broker.authority.store import DecidedBy, Decider
from broker.settings import BrokerSettings
from identity.participant import Participant
from service.logs import key_id


async def get_settings(request: Request) -> BrokerSettings:
    settings: BrokerSettings = request.app.state.settings
    return settings


async def get_authority(request: Request) -> Authority:
    authority: Authority = request.app.state.authority
    return authority


async def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


async def get_participant(request: Request) -> Participant:
    participant: Participant = request.app.state.participant
    return participant


SettingsDep = Annotated[BrokerSettings, Depends(get_settings)]
AuthorityDep = Annotated[Authority, Depends(get_authority)]
ParticipantDep = Annotated[Participant, Depends(get_participant)]
EngineDep = Annotated[Engine, Depends(get_engine)]


async def require_operator(
    settings: SettingsDep, x_api_key: Annotated[str | None, Header()] = None
) -> Decider:
    """The operator, named in audit events by its key's id."""
    expected = settings.admin_api_key.get_secret_value().encode()
    if x_api_key is None or not hmac.compare_digest(x_api_key.encode(), expected):
        raise AuthorityError(401, "not_operator", "the admin API needs the operator's X-Api-Key")
    return Decider(DecidedBy.OPERATOR, key_id(x_api_key))


OperatorDep = Depends(require_operator)
OperatorDecider = Annotated[Decider, OperatorDep]
