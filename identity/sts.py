"""A participant's secure token service: the self-issued tokens it sends with outbound calls.

Each call gets a fresh ID token; the access token inside it (the grant to read our Credential
Service) is kept and sent again to the same verifier for the same scopes while it has at least
half its life left and the credentials we hold are the same. A verifier may keep what it pulled
under one grant (Kexin's does, for its cache's time): a credential added or removed makes a new
grant, so that the verifier asks again at once instead of answering from what it kept.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from identity.keyring import KeyRing
from identity.tokens import mint_access_token, mint_id_token

WRITE_SCOPE = "kexin.credentials:write"
"""Lets an issuer deliver credentials to the holder's Credential Service."""
GRANT_LIFETIME: Final = timedelta(minutes=5)
MAX_GRANTS: Final = 1000
"""Grants kept for reuse; beyond this many verifiers, all are forgotten and minted afresh."""


@dataclass(frozen=True)
class _Grant:
    token: str
    renew_at: datetime
    held: str


def _nothing_held() -> str:
    return ""


class SecureTokenService:
    def __init__(
        self,
        keyring: KeyRing,
        clock: Callable[[], datetime],
        held: Callable[[], str] = _nothing_held,
    ) -> None:
        """``held``: what identifies the credentials we hold now (it changes when one is added
        or removed)."""
        self.keyring = keyring
        self._clock = clock
        self._held = held
        self._grants: dict[tuple[str, str, tuple[str, ...]], _Grant] = {}

    @property
    def did(self) -> str:
        return self.keyring.owner

    def id_token(self, audience: str, *, token: str | None = None) -> str:
        key = self.keyring.current
        return mint_id_token(
            issuer=self.did,
            key=key.private_key,
            key_id=key.key_id,
            audience=audience,
            now=self._clock(),
            token=token,
        )

    def access_token(
        self, verifier: str, scopes: Sequence[str], lifetime: timedelta = timedelta(minutes=5)
    ) -> str:
        key = self.keyring.current
        return mint_access_token(
            holder=self.did,
            key=key.private_key,
            key_id=key.key_id,
            verifier=verifier,
            scopes=scopes,
            now=self._clock(),
            lifetime=lifetime,
        )

    def bearer_for(self, audience: str, scopes: Sequence[str]) -> str:
        """An ID token for ``audience`` that lets it read ``scopes`` from our Credential Service."""
        return self.id_token(audience, token=self._grant(audience, scopes))

    def _grant(self, audience: str, scopes: Sequence[str]) -> str:
        now, held = self._clock(), self._held()
        key = (self.keyring.current.key_id, audience, tuple(scopes))
        grant = self._grants.get(key)
        if grant is None or grant.held != held or grant.renew_at <= now:
            if len(self._grants) >= MAX_GRANTS:
                self._grants.clear()
            token = self.access_token(audience, scopes, GRANT_LIFETIME)
            grant = _Grant(token, now + GRANT_LIFETIME / 2, held)
            self._grants[key] = grant
        return grant.token
