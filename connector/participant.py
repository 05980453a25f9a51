"""This connector's identity at run time, built from its settings (by the app and the CLI)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy.engine import Engine

from connector.database import migrations
from connector.owner import claim
from connector.settings import ConnectorSettings
from identity.credentials import TrustedIssuers
from identity.database import migrations as identity_migrations
from identity.participant import Participant, build_participant
from ledger.database import migrations as ledger_migrations
from service.transport import guarded_transport
from storage.engine import create_engine
from storage.migrate import Migrations, upgrade


def schemas() -> tuple[Migrations, ...]:
    """The schemas the connector keeps in its database (the ledger's: its own chained events
    and signed batches, connector/ledger.py)."""
    return migrations(), identity_migrations(), ledger_migrations()


def migrate(engine: Engine) -> None:
    for schema in schemas():
        upgrade(engine, schema)


def participant_for(
    settings: ConnectorSettings,
    engine: Engine,
    client: httpx.AsyncClient,
    clock: Callable[[], datetime],
) -> Participant:
    """This connector's identity, from the (migrated) database it claims for its DID
    (:class:`connector.owner.ForeignDatabaseError` when another connector's)."""
    claim(engine, settings.participant_id, clock())
    return build_participant(
        did=settings.participant_id,
        engine=engine,
        passphrase=settings.key_passphrase.get_secret_value(),
        client=client,
        trusted=TrustedIssuers(
            {kind: frozenset(dids) for kind, dids in settings.trusted_issuers.items()}
        ),
        required=settings.required_credentials,
        destinations=settings.destinations,
        status_ttl=timedelta(seconds=settings.status_list_ttl_s),
        clock=clock,
        key_type=settings.key_type,
        key_cost=settings.key_cost,
    )


@asynccontextmanager
async def standalone(
    settings: ConnectorSettings,
) -> AsyncIterator[tuple[Participant, httpx.AsyncClient]]:
    """This connector's identity outside its server (the CLI's onboarding and key commands):
    the same database, keys and settings, with its own HTTP client."""
    engine = create_engine(settings.database_url)
    try:
        migrate(engine)
        async with httpx.AsyncClient(
            transport=guarded_transport(settings.destinations), timeout=settings.http_timeout_s
        ) as client:
            yield participant_for(settings, engine, client, lambda: datetime.now(UTC)), client
    finally:
        engine.dispose()
