"""FastAPI dependencies of the connector: the only readers of ``app.state``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.engine import Engine

from connector.settings import ConnectorSettings
from identity.participant import Participant


def get_settings(request: Request) -> ConnectorSettings:
    settings: ConnectorSettings = request.app.state.settings
    return settings


def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def get_participant(request: Request) -> Participant:
    participant: Participant = request.app.state.participant
    return participant


SettingsDep = Annotated[ConnectorSettings, Depends(get_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]
ParticipantDep = Annotated[Participant, Depends(get_participant)]
