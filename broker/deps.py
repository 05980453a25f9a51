"""FastAPI dependencies of the broker: the only readers of ``app.state``."""

from __future__ import annotations

import hmac
from typing import Annotated, Final

from fastapi import Depends, Header, Request, Security
from fastapi.security import APIKeyHeader
from sqlalchemy.engine import Engine
from sqlmodel import Session

from broker.authority.issuer import Authority, AuthorityError
from broker.authority.store import DecidedBy, Decider
from broker.registry.machine import State
from broker.registry.standing import standing
from broker.search.crawler import Crawler
from broker.settings import BrokerSettings
from identity.errors import IdentityError, Reason
from identity.participant import Participant
from identity.verifier import Peer
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


def get_crawler(request: Request) -> Crawler:
    crawler: Crawler | None = request.app.state.crawler
    if crawler is None:
        raise AuthorityError(
            409, "no_crawler", "the broker has no organisation of its own (BROKER_ORGANISATION), "
            "so no membership: it does not crawl",
        )  # fmt: skip
    return crawler


SettingsDep = Annotated[BrokerSettings, Depends(get_settings)]
CrawlerDep = Annotated[Crawler, Depends(get_crawler)]
AuthorityDep = Annotated[Authority, Depends(get_authority)]
ParticipantDep = Annotated[Participant, Depends(get_participant)]
EngineDep = Annotated[Engine, Depends(get_engine)]


ADMIN_KEY: Final = APIKeyHeader(
    name="X-Api-Key",
    scheme_name="OperatorApiKey",
    description="The operator's key for the admin API (BROKER_ADMIN_API_KEY).",
    auto_error=False,
)
"""The admin API's security scheme, declared in the OpenAPI (Swagger UI's Authorize)."""


async def require_operator(
    settings: SettingsDep, x_api_key: Annotated[str | None, Security(ADMIN_KEY)] = None
) -> Decider:
    """The operator, named in audit events by its key's id."""
    expected = settings.admin_api_key.get_secret_value().encode()
    if x_api_key is None or not hmac.compare_digest(x_api_key.encode(), expected):
        raise AuthorityError(401, "not_operator", "the admin API needs the operator's X-Api-Key")
    return Decider(DecidedBy.OPERATOR, key_id(x_api_key))


OperatorDep = Depends(require_operator)
OperatorDecider = Annotated[Decider, OperatorDep]


async def require_member(
    participant: ParticipantDep,
    engine: EngineDep,
    authorization: Annotated[str | None, Header()] = None,
) -> Peer:
    """A member of the data space, authenticated the DCP way: a valid MembershipCredential of
    this authority in its presentation, and active in the registry now (a suspension counts at
    once here, before any status-list cache refreshes)."""
    peer = await participant.verifier.authenticate(authorization)
    if not peer.facts().membership:
        raise IdentityError(Reason.MISSING_CREDENTIAL, f"{peer.did} lacks MembershipCredential")
    with Session(engine) as session:
        state = standing(session, peer.did)
    if state is not State.ACTIVE:
        shown = "not registered" if state is None else state.value
        raise IdentityError(Reason.ACCESS_DENIED, f"{peer.did} is {shown}")
    return peer


MemberDep = Annotated[Peer, Depends(require_member)]


async def require_searcher(
    participant: ParticipantDep,
    engine: EngineDep,
    settings: SettingsDep,
    authorization: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Security(ADMIN_KEY)] = None,
) -> str:
    """The operator (by its key, when one is given) or a member (DCP): who is searching."""
    if x_api_key is not None:
        return (await require_operator(settings, x_api_key)).operator_key_id or "operator"
    return (await require_member(participant, engine, authorization)).did


SearcherDep = Annotated[str, Depends(require_searcher)]
