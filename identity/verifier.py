"""The verifier side: authenticate a calling participant the DCP way.

1. Validate its self-issued ID token (signature, audience, lifetime, replay).
2. Unless a verified presentation of that participant is cached, resolve its DID document, find
   its ``CredentialService`` (admitted by the destination policy: HTTPS, no query string, on
   the DID's own host unless allowed), and query it with our own ID token carrying the caller's
   access token (the answer read under a total deadline and capped at ``MAX_VP_BYTES`` while it
   streams in); verify the returned presentation and each credential in it, on its own: a
   credential that fails (forged, untrusted, expired, revoked, its status unreadable) is left
   out and logged with its reason, and counts as not held.
3. Require the credential types this service needs; cache the result for at most the
   revocation-list TTL, so that a revocation is noticed once the caches refresh. The result is
   cached under the access token it was pulled with: a holder that grants anew (a Kexin holder
   does as soon as its credentials change) is asked again at once, so that a re-issued
   credential counts from the next request. A result in which a credential could not be
   checked (status list or issuer unreachable) is not cached.

The result is a :class:`Peer`: who the caller is and what its credentials say, ready to be the
credential part of a policy decision.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import httpx

from identity.credential_service import bearer
from identity.credentials import CredentialType, RevocationCheck, TrustedIssuers
from identity.errors import IdentityError, Reason
from identity.fetch import FETCH_DEADLINE_S, Limits, fetch
from identity.flight import SingleFlight
from identity.presentations import (
    DCP_CONTEXT,
    EVERY_SCOPE,
    MAX_VP_BYTES,
    RefusedCredential,
    VerifiedPresentation,
    verify_presentation,
)
from identity.resolver import DIDResolver
from identity.sts import SecureTokenService
from identity.tokens import ReplayCache, validate_id_token
from policy.operands import CredentialFacts, Grade
from service.destinations import DestinationError

log = logging.getLogger("kexin.identity")

UNCHECKED: Final = frozenset({Reason.STATUS_UNAVAILABLE, Reason.UNRESOLVABLE_DID})
"""Refusals that say a credential could not be checked, not that it is bad: they count as not
held now, and a result with one is not cached, so the next request checks again."""


@dataclass(frozen=True)
class Peer:
    did: str
    presentation: VerifiedPresentation

    def facts(self) -> CredentialFacts:
        return facts_of(
            (c.type, c.organisation.data_grade, c.organisation.region)
            for c in self.presentation.credentials
        )


def facts_of(credentials: Iterable[tuple[CredentialType, Grade, str]]) -> CredentialFacts:
    """What verified credentials (type, the holder's data grade and region) say for policies:
    membership, the roles they give, the highest data grade, the member's region."""
    held = list(credentials)
    roles = frozenset(role for kind, _, _ in held if (role := kind.role) is not None)
    grades = [grade for _, grade, _ in held]
    membership = next(
        (region for kind, _, region in held if kind is CredentialType.MEMBERSHIP), None
    )
    return CredentialFacts(
        membership=any(kind is CredentialType.MEMBERSHIP for kind, _, _ in held),
        roles=roles,
        data_grade=max(grades, key=lambda g: g.rank) if grades else None,
        region=membership,
    )


@dataclass(frozen=True)
class _Verdict:
    grant: str
    """The access token the presentation was pulled with."""
    until: datetime
    peer: Peer


def _missing(
    holder: str, missing: frozenset[CredentialType], refused: Iterable[RefusedCredential]
) -> IdentityError:
    """A caller without a required credential; when it presented one that was refused, the
    refusal's reason says why."""
    names = ", ".join(sorted(t.value for t in missing))
    why = next((r for r in refused if r.type in {t.value for t in missing}), None)
    if why is None:
        return IdentityError(Reason.MISSING_CREDENTIAL, f"{holder} lacks {names}")
    return IdentityError(why.reason, f"{holder} lacks a valid {names}: {why.message}")


class Verifier:
    def __init__(
        self,
        *,
        sts: SecureTokenService,
        resolver: DIDResolver,
        trusted: TrustedIssuers,
        revocation: RevocationCheck,
        replay: ReplayCache,
        client: httpx.AsyncClient,
        required: Collection[CredentialType],
        cache_ttl: timedelta,
        clock: Callable[[], datetime],
        deadline_s: float = FETCH_DEADLINE_S,
    ) -> None:
        self._sts = sts
        self._deadline_s = deadline_s
        self._resolver = resolver
        self._trusted = trusted
        self._revocation = revocation
        self._replay = replay
        self._client = client
        self._required = frozenset(required)
        self._cache_ttl = cache_ttl
        self._clock = clock
        self._cache: dict[str, _Verdict] = {}
        self._flights: SingleFlight[tuple[str, str], VerifiedPresentation] = SingleFlight()
        """A burst from one caller under one grant queries its Credential Service once, not
        once a request; a request under a new grant never waits for the old grant's answer."""

    async def authenticate(self, authorization: str | None) -> Peer:
        now = self._clock()
        id_token = await validate_id_token(
            bearer(authorization), audience=self._sts.did, resolver=self._resolver,
            replay=self._replay, now=now,
        )  # fmt: skip
        if id_token.token is None:
            raise IdentityError(Reason.ACCESS_DENIED, "no token claim: cannot query credentials")
        token = id_token.token
        cached = self._cache.get(id_token.issuer)
        if cached is not None and cached.grant == token and cached.until > now:
            return cached.peer
        presentation = await self._flights.run(
            (id_token.issuer, token), lambda: self._pull(id_token.issuer, token, now)
        )
        missing = self._required - presentation.types()
        if missing:
            raise _missing(id_token.issuer, missing, presentation.refused)
        peer = Peer(id_token.issuer, presentation)
        if any(r.reason in UNCHECKED for r in presentation.refused):
            self._cache.pop(id_token.issuer, None)
        else:
            until = min(now + self._cache_ttl, presentation.expires_at)
            self._cache[id_token.issuer] = _Verdict(token, until, peer)
        return peer

    def forget(self, did: str) -> None:
        self._cache.pop(did, None)

    async def _pull(self, holder: str, access_token: str, now: datetime) -> VerifiedPresentation:
        document = await self._resolver.resolve(holder)
        service = document.service("CredentialService")
        if service is None:
            raise IdentityError(Reason.UNRESOLVABLE_DID, f"{holder} has no CredentialService")
        query = {
            "@context": [DCP_CONTEXT],
            "type": "PresentationQueryMessage",
            # Every type we understand: the holder presents what it granted us, no more.
            "scope": list(EVERY_SCOPE),
        }
        headers = {"Authorization": "Bearer " + self._sts.id_token(holder, token=access_token)}
        try:
            endpoint = self._resolver.destinations.credential_service(service.endpoint, holder)
        except DestinationError as error:
            raise IdentityError(Reason.UNRESOLVABLE_DID, f"{holder}: {error}") from None
        url = str(endpoint).rstrip("/") + "/presentations/query"
        answer = await fetch(
            self._client, "POST", url, Limits(MAX_VP_BYTES, self._deadline_s),
            unavailable=Reason.UNRESOLVABLE_DID, oversized=Reason.ACCESS_DENIED,
            json_body=query, headers=headers,
        )  # fmt: skip
        if answer.status_code != httpx.codes.OK:
            raise IdentityError(
                Reason.ACCESS_DENIED,
                f"{holder}'s Credential Service answered {answer.status_code}",
            )
        try:
            body: Any = json.loads(answer.body)
        except ValueError:
            raise IdentityError(
                Reason.MALFORMED_TOKEN, "presentation response is not JSON"
            ) from None
        presentations = body.get("presentation") if isinstance(body, dict) else None
        if not isinstance(presentations, list) or len(presentations) > 1:
            raise IdentityError(Reason.MALFORMED_TOKEN, "expected at most one presentation")
        if not presentations:  # DCP: fewer entries than asked for, as few as none
            return VerifiedPresentation(holder, (), now + self._cache_ttl)
        (token,) = presentations
        if not isinstance(token, str):
            raise IdentityError(Reason.MALFORMED_TOKEN, "only JWT presentations are accepted")
        presentation = await verify_presentation(
            token, audience=self._sts.did, expected_holder=holder, resolver=self._resolver,
            trusted=self._trusted, revocation=self._revocation, now=now,
        )  # fmt: skip
        for refused in presentation.refused:  # claims unverified: quoted, never trusted
            log.warning(
                "%s presented %r %r of %r: not counted, %s: %r", holder, refused.type,
                refused.id, refused.issuer, refused.reason.value, refused.message,
            )  # fmt: skip
        return presentation
