"""Identity data in a service's database: the replay cache and the credentials a participant
holds. Each write is its own short transaction."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import UTC, datetime

from sqlalchemy import delete
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from identity.credentials import CredentialType, VerifiedCredential
from identity.database import HeldCredential, SeenToken

PURGE_EVERY: int = 500
"""Expired jti rows are deleted once every this many recorded tokens."""


class SqlReplayCache:
    """jti values seen, per issuer, until their token expires; survives restarts."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._recorded = 0

    def first_use(self, issuer: str, jti: str, expires_at: datetime) -> bool:
        with Session(self._engine) as session:
            session.add(SeenToken(issuer=issuer, jti=jti, expires_at=expires_at.astimezone(UTC)))
            try:
                session.commit()
            except IntegrityError:
                return False
        self._recorded += 1
        if self._recorded % PURGE_EVERY == 0:
            self.purge(datetime.now(UTC))
        return True

    def purge(self, now: datetime) -> None:
        with Session(self._engine) as session:
            session.execute(delete(SeenToken).where(col(SeenToken.expires_at) < now))
            session.commit()


class CredentialStore:
    """The credentials this participant holds (written by the Credential Service)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def save(self, credential: VerifiedCredential, now: datetime) -> None:
        with Session(self._engine) as session:
            session.merge(
                HeldCredential(
                    id=credential.id,
                    credential_type=credential.type.value,
                    issuer=credential.issuer,
                    payload=credential.token,
                    received_at=now,
                    expires_at=credential.expires_at,
                )
            )
            session.commit()

    def tokens(self, types: Collection[CredentialType], now: datetime) -> Sequence[str]:
        """Unexpired credentials of the given types, newest first."""
        with Session(self._engine) as session:
            rows = session.exec(
                select(HeldCredential)
                .where(col(HeldCredential.credential_type).in_([t.value for t in types]))
                .order_by(col(HeldCredential.received_at).desc())
            ).all()
            return [
                row.payload
                for row in rows
                if row.expires_at.replace(tzinfo=row.expires_at.tzinfo or UTC) > now
            ]

    def types(self) -> frozenset[CredentialType]:
        with Session(self._engine) as session:
            names = session.exec(select(HeldCredential.credential_type).distinct()).all()
            return frozenset(CredentialType(name) for name in names)
