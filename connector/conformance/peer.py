"""Who the test kit is, in conformance-testing mode: the static token stands for one configured
participant (the Eclipse DSP TCK calls itself ``TCK_PARTICIPANT``), holding the configured
credential types as if they had been verified, so that policies, the data plane and its
monitor judge it like a member. Never used outside conformance mode."""

from __future__ import annotations

import hmac
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Final

from identity.credentials import CredentialType, Organisation, VerifiedCredential
from identity.presentations import VerifiedPresentation
from identity.verifier import Peer
from policy.operands import Grade

ISSUER: Final = "urn:kexin:conformance-mode"
"""Stands where an issuer's DID would: nobody issued these credentials."""
KIT_ORGANISATION: Final = Organisation(
    name="Conformance test kit",
    credit_code="91110000MA01KX1N05",  # a well-formed code (GB 32100 check character)
    region="110000",
    data_grade=Grade.GENERAL,
)
NEVER: Final = datetime(9999, 12, 31, tzinfo=UTC)


def kit_peer(participant: str, credentials: Collection[CredentialType]) -> Peer:
    held = tuple(
        VerifiedCredential(
            id=f"urn:kexin:conformance:{kind.value}",
            type=kind,
            issuer=ISSUER,
            subject=participant,
            organisation=KIT_ORGANISATION,
            expires_at=NEVER,
            status=None,
            token="",
        )
        for kind in credentials
    )
    return Peer(participant, VerifiedPresentation(participant, held, NEVER))


class KitAuthentication:
    """The static token (compared in constant time) is the kit; anything else is not."""

    def __init__(self, token: str, peer: Peer) -> None:
        self._token = token.encode()
        self.peer = peer

    def authenticate(self, authorization: str | None) -> Peer | None:
        if authorization is None:
            return None
        presented = authorization.removeprefix("Bearer ").strip().encode()
        return self.peer if hmac.compare_digest(presented, self._token) else None
