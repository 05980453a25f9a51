"""Identity data in a service's database: the replay cache and the credentials a participant
holds. Each write is its own short transaction."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime

from sqlalchemy import delete, insert
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
        # one INSERT in its own transaction, without the ORM (once per message received)
        row = {"issuer": issuer, "jti": jti, "expires_at": expires_at.astimezone(UTC)}
        try:
            with self._engine.begin() as connection:
                connection.execute(insert(SeenToken), row)
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


FINGERPRINT_TTL_S: float = 1.0
"""How long :meth:`CredentialStore.fingerprint` trusts its last reading when this store did not
change the credentials itself: another process (``dataspace connector credentials remove``)
is seen within this time."""


class CredentialStore:
    """The credentials this participant holds (written by the Credential Service)."""

    def __init__(self, engine: Engine, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._engine = engine
        self._clock = clock
        self._fingerprint: tuple[float, str] | None = None

    def save(self, credential: VerifiedCredential, now: datetime) -> None:
        try:
            self._save(credential, now)
        finally:  # after the commit: a reading taken meanwhile is not kept
            self._fingerprint = None

    def _save(self, credential: VerifiedCredential, now: datetime) -> None:
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

    def held(
        self,
        types: Collection[CredentialType] | None = None,
        *,
        offset: int = 0,
        limit: int | None = None,
    ) -> Sequence[HeldCredential]:
        """The credentials held (of the given types), newest first, expired ones included."""
        query = select(HeldCredential)
        if types is not None:
            query = query.where(col(HeldCredential.credential_type).in_([t.value for t in types]))
        order = (col(HeldCredential.received_at).desc(), col(HeldCredential.id))
        with Session(self._engine) as session:
            return session.exec(query.order_by(*order).offset(offset).limit(limit)).all()

    def remove(self, credential_id: str) -> bool:
        """Forget a held credential; False when there is none with that id."""
        try:
            return self._remove(credential_id)
        finally:  # after the commit: a reading taken meanwhile is not kept
            self._fingerprint = None

    def _remove(self, credential_id: str) -> bool:
        with Session(self._engine) as session:
            removed = session.execute(
                delete(HeldCredential).where(col(HeldCredential.id) == credential_id)
            )
            session.commit()
            return bool(getattr(removed, "rowcount", 0))

    def fingerprint(self) -> str:
        """What identifies the set of held credentials: it changes when one is added, replaced
        or removed (and the same set always gives the same value, in every process). Read once
        per outbound message: a change made through this store shows at once, one made by
        another process within ``FINGERPRINT_TTL_S``."""
        now = self._clock()
        if self._fingerprint is not None and now < self._fingerprint[0]:
            return self._fingerprint[1]
        with Session(self._engine) as session:
            rows = session.exec(
                select(HeldCredential.id, HeldCredential.received_at).order_by(
                    col(HeldCredential.id)
                )
            ).all()
        digest = hashlib.sha256()
        for credential_id, received_at in rows:
            digest.update(f"{credential_id}\n{received_at.isoformat()}\n".encode())
        value = digest.hexdigest()
        self._fingerprint = (now + FINGERPRINT_TTL_S, value)
        return value

    def types(self) -> frozenset[CredentialType]:
        with Session(self._engine) as session:
            names = session.exec(select(HeldCredential.credential_type).distinct()).all()
            return frozenset(CredentialType(name) for name in names)
