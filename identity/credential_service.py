"""The holder side of DCP's Verifiable Presentation Protocol: answer presentation queries and
store credentials that issuers deliver. HTTP routes live in the service that hosts it.

A query is answered only for a verifier that presents (1) its own valid self-issued token
addressed to us and (2) in its ``token`` claim, an access token we issued to that same verifier
for scopes covering what it asks. A delivery is stored only when every credential in it verifies,
is about us, and comes from the issuer that authenticated the delivery.

The holder presents only what it still believes valid: before each presentation it checks every
held credential's validity period and its status list entry (through the status-list cache, so
not a fetch per presentation) and leaves out the expired, not yet valid and revoked ones. A
credential whose list cannot be read now is presented all the same: the verifier checks it
itself and, unable to, counts it as not held. The operator lists held credentials with that
belief and removes them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from identity.credentials import CredentialType, RevocationCheck, TrustedIssuers, verify_credential
from identity.database import HeldCredential
from identity.errors import IdentityError, Reason
from identity.jwt_sign import unverified
from identity.keyring import KeyRing
from identity.presentations import DCP_CONTEXT, issue_presentation, types_in_scopes
from identity.resolver import DIDResolver
from identity.status import StatusEntry
from identity.store import CredentialStore
from identity.sts import WRITE_SCOPE
from identity.tokens import ReplayCache, check_access_token, validate_id_token
from identity.validity import LEEWAY_S

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


class Belief(StrEnum):
    """What the holder believes of a credential it holds, now."""

    VALID = "valid"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    REVOKED = "revoked"
    UNKNOWN = "unknown"
    """Its status list cannot be read now; presented, for the verifier to judge."""

    @property
    def presented(self) -> bool:
        return self in (Belief.VALID, Belief.UNKNOWN)


@dataclass(frozen=True)
class Holding:
    """A held credential as its stored JWT says (verified when it was delivered), and what the
    holder believes of it."""

    id: str
    type: CredentialType
    issuer: str
    issued_at: datetime
    expires_at: datetime
    received_at: datetime
    status: StatusEntry | None
    token: str
    belief: Belief
    why: str | None
    """Why the belief is not ``valid``."""


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=moment.tzinfo or UTC)


def _entry_of(claims: dict[str, Any]) -> StatusEntry | None:
    vc = claims.get("vc")
    if not isinstance(vc, dict) or "credentialStatus" not in vc:
        return None
    return StatusEntry.from_json(vc["credentialStatus"])


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
        presentations = [await self._present(allowed, verifier)] if allowed else []
        return {
            "@context": [DCP_CONTEXT],
            "type": "PresentationResponseMessage",
            "presentation": presentations,
        }

    async def _present(self, allowed: frozenset[CredentialType], verifier: str) -> str:
        now = self._clock()
        held = await self.holdings(allowed)
        key = self._keyring.current
        return issue_presentation(
            holder=self.holder, key=key.private_key, key_id=key.key_id,
            credentials=[h.token for h in held if h.belief.presented], audience=verifier, now=now,
        )  # fmt: skip

    async def holdings(
        self,
        types: frozenset[CredentialType] | None = None,
        *,
        offset: int = 0,
        limit: int | None = None,
    ) -> Sequence[Holding]:
        """The credentials held (of ``types``), newest first, each with the holder's belief.
        A status list that cannot be read is asked once per call, not once per credential."""
        now = self._clock()
        unreadable: dict[tuple[str, str], str] = {}
        rows = self._store.held(types, offset=offset, limit=limit)
        return [await self._judge(row, now, unreadable) for row in rows]

    async def _judge(
        self, row: HeldCredential, now: datetime, unreadable: dict[tuple[str, str], str]
    ) -> Holding:
        _, claims = unverified(row.payload)  # our own copy, verified when it was delivered
        entry = _entry_of(claims)
        issued = claims.get("nbf", claims.get("iat"))
        issued_at = (
            datetime.fromtimestamp(issued, UTC)
            if isinstance(issued, int | float)
            else _utc(row.received_at)
        )
        expires_at = _utc(row.expires_at)
        belief, why = Belief.VALID, None
        if now.timestamp() >= expires_at.timestamp() + LEEWAY_S:
            belief, why = Belief.EXPIRED, f"expired at {expires_at.isoformat()}"
        elif now.timestamp() + LEEWAY_S < issued_at.timestamp():
            belief, why = Belief.NOT_YET_VALID, f"valid from {issued_at.isoformat()}"
        elif entry is not None:
            belief, why = await self._status(entry, row.issuer, unreadable)
        return Holding(
            id=row.id, type=CredentialType(row.credential_type), issuer=row.issuer,
            issued_at=issued_at, expires_at=expires_at, received_at=_utc(row.received_at),
            status=entry, token=row.payload, belief=belief, why=why,
        )  # fmt: skip

    async def _status(
        self, entry: StatusEntry, issuer: str, unreadable: dict[tuple[str, str], str]
    ) -> tuple[Belief, str | None]:
        known = unreadable.get((entry.list_url, issuer))
        if known is not None:
            return Belief.UNKNOWN, known
        try:
            revoked = await self._revocation.is_revoked(entry, issuer)
        except IdentityError as error:
            unreadable[entry.list_url, issuer] = error.message
            return Belief.UNKNOWN, error.message
        if revoked:
            return Belief.REVOKED, f"revoked in {entry.list_url} (entry {entry.index})"
        return Belief.VALID, None

    def remove(self, credential_id: str) -> bool:
        """Stop holding a credential: it is never presented again. False if none has that id."""
        return self._store.remove(credential_id)

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
