"""The holder side of DCP's Verifiable Presentation Protocol: answer presentation queries and
store credentials that issuers deliver. HTTP routes live in the service that hosts it.

A query is answered only for a verifier that presents (1) its own valid self-issued token
addressed to us and (2) in its ``token`` claim, an access token we issued to that same verifier
for scopes covering what it asks. A delivery is stored only when every credential in it verifies,
is about us, and comes from the issuer that authenticated the delivery.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from identity.credentials import CredentialType, RevocationCheck, TrustedIssuers, verify_credential
from identity.errors import IdentityError, Reason
from identity.keyring import KeyRing
from identity.presentations import DCP_CONTEXT, issue_presentation, types_in_scopes
from identity.resolver import DIDResolver
from identity.store import CredentialStore
from identity.sts import WRITE_SCOPE
from identity.tokens import ReplayCache, check_access_token, validate_id_token

MAX_SCOPES = 20
MAX_DELIVERED = 20


def bearer(authorization: str | None) -> str:
    if authorization is None or not authorization.startswith("Bearer "):
        raise IdentityError(
            Reason.MALFORMED_TOKEN, "Authorization: Bearer <self-issued token> needed"
        )
    return authorization.removeprefix("Bearer ").strip()


class UnsupportedQueryError(Exception):
    """A query by presentationDefinition: DCP says answer 501 when it is not supported."""


class CredentialService:
    def __init__(
        self,
        *,
        keyring: KeyRing,
        store: CredentialStore,
        resolver: DIDResolver,
        replay: ReplayCache,
        trusted: TrustedIssuers,
        revocation: RevocationCheck,
        clock: Callable[[], datetime],
    ) -> None:
        self._keyring = keyring
        self._store = store
        self._resolver = resolver
        self._replay = replay
        self._trusted = trusted
        self._revocation = revocation
        self._clock = clock

    @property
    def holder(self) -> str:
        return self._keyring.owner

    async def _caller(self, authorization: str | None) -> tuple[str, frozenset[str]]:
        """The verifier that calls, and the scopes our access token granted it."""
        now = self._clock()
        id_token = await validate_id_token(
            bearer(authorization), audience=self.holder, resolver=self._resolver,
            replay=self._replay, now=now,
        )  # fmt: skip
        if id_token.token is None:
            raise IdentityError(Reason.ACCESS_DENIED, "no access token in the token claim")
        grant = check_access_token(
            id_token.token,
            holder_document=self._keyring.document(),
            verifier=id_token.issuer,
            now=now,
        )
        return id_token.issuer, grant.scopes

    async def query(self, authorization: str | None, message: Any) -> dict[str, Any]:
        """Present the credentials asked for that the holder granted this verifier; the
        verifier learns nothing the holder did not grant, and a query for nothing granted is
        answered with no presentation."""
        if not isinstance(message, dict) or message.get("type") != "PresentationQueryMessage":
            raise IdentityError(Reason.MALFORMED_TOKEN, "expected a PresentationQueryMessage")
        if "presentationDefinition" in message:
            raise UnsupportedQueryError("presentationDefinition is not supported; query by scope")
        scopes = message.get("scope")
        if not isinstance(scopes, list) or not scopes or len(scopes) > MAX_SCOPES:
            raise IdentityError(Reason.MALFORMED_TOKEN, f"scope must list 1 to {MAX_SCOPES} scopes")
        if not all(isinstance(s, str) for s in scopes):
            raise IdentityError(Reason.MALFORMED_TOKEN, "scopes are strings")
        types_in_scopes(scopes)  # unknown scopes are refused before anything else
        verifier, granted = await self._caller(authorization)
        allowed = types_in_scopes(set(scopes) & granted)
        # DCP 1.0, Resolution API, scopes: "If the array contains scopes that a client is not
        # entitled to, the Credential Service MUST return HTTP 2xx with the
        # PresentationResponseMessage's presentation array holding less entries than
        # requested." Nothing granted: no presentation at all, and still a 200.
        presentations = [self._present(allowed, verifier)] if allowed else []
        return {
            "@context": [DCP_CONTEXT],
            "type": "PresentationResponseMessage",
            "presentation": presentations,
        }

    def _present(self, allowed: frozenset[CredentialType], verifier: str) -> str:
        now = self._clock()
        key = self._keyring.current
        return issue_presentation(
            holder=self.holder, key=key.private_key, key_id=key.key_id,
            credentials=self._store.tokens(allowed, now), audience=verifier, now=now,
        )  # fmt: skip

    async def deliver(self, authorization: str | None, message: Any) -> int:
        """Store the credentials of a ``CredentialMessage``; returns how many."""
        if not isinstance(message, dict) or message.get("type") != "CredentialMessage":
            raise IdentityError(Reason.MALFORMED_TOKEN, "expected a CredentialMessage")
        items = message.get("credentials")
        if not isinstance(items, list) or not items or len(items) > MAX_DELIVERED:
            raise IdentityError(
                Reason.MALFORMED_TOKEN, f"credentials must list 1 to {MAX_DELIVERED}"
            )
        issuer, granted = await self._caller(authorization)
        if WRITE_SCOPE not in granted:
            raise IdentityError(Reason.ACCESS_DENIED, f"{issuer} was not granted {WRITE_SCOPE}")
        now = self._clock()
        verified = []
        for item in items:
            if not isinstance(item, dict) or item.get("format") != "jwt":
                raise IdentityError(Reason.INVALID_CREDENTIAL, "only format jwt is accepted")
            payload = item.get("payload")
            if not isinstance(payload, str):
                raise IdentityError(Reason.INVALID_CREDENTIAL, "payload must be a JWT string")
            credential = await verify_credential(
                payload, resolver=self._resolver, trusted=self._trusted,
                revocation=self._revocation, now=now, expected_subject=self.holder,
            )  # fmt: skip
            if credential.issuer != issuer:
                raise IdentityError(
                    Reason.UNTRUSTED_ISSUER,
                    f"{issuer} delivered a credential of {credential.issuer}",
                )
            verified.append(credential)
        for credential in verified:  # all verified: only now is anything stored
            self._store.save(credential, now)
        return len(verified)
