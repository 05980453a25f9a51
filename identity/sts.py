"""A participant's secure token service: the self-issued tokens it sends with outbound calls."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from identity.keyring import KeyRing
from identity.tokens import mint_access_token, mint_id_token

WRITE_SCOPE = "kexin.credentials:write"
"""Lets an issuer deliver credentials to the holder's Credential Service."""


class SecureTokenService:
    def __init__(self, keyring: KeyRing, clock: Callable[[], datetime]) -> None:
        self.keyring = keyring
        self._clock = clock

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
        return self.id_token(audience, token=self.access_token(audience, scopes))
