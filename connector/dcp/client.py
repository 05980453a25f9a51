"""Outbound DCP calls of the connector: ask the data-space authority for credentials.

The authority is found by its DID: its document's ``IssuerService`` is the base URL of the
issuance API. The request's ID token carries a write grant for our Credential Service (valid
for a week, so that an operator may approve later), which the authority uses to deliver.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import httpx

from identity.claims import OrganisationClaims
from identity.credentials import CredentialType
from identity.errors import IdentityError
from identity.participant import Participant
from identity.presentations import DCP_CONTEXT
from identity.sts import WRITE_SCOPE

DELIVERY_GRANT = timedelta(days=7)


class OnboardingError(Exception):
    """The authority could not be reached or refused the request."""


async def request_credentials(
    participant: Participant,
    client: httpx.AsyncClient,
    authority: str,
    types: Sequence[CredentialType],
    organisation: OrganisationClaims | None = None,
) -> dict[str, Any]:
    """Send a CredentialRequestMessage; returns the authority's CredentialStatus."""
    try:
        document = await participant.resolver.resolve(authority)
    except IdentityError as error:
        raise OnboardingError(f"cannot resolve the authority: {error}") from None
    service = document.service("IssuerService")
    if service is None:
        raise OnboardingError(f"{authority} publishes no IssuerService")
    grant = participant.sts.access_token(authority, [WRITE_SCOPE], lifetime=DELIVERY_GRANT)
    message: dict[str, Any] = {
        "@context": [DCP_CONTEXT],
        "type": "CredentialRequestMessage",
        "holderPid": f"urn:uuid:{uuid.uuid4()}",
        "credentials": [{"id": kind.value} for kind in types],
    }
    if organisation is not None:
        message["organisation"] = organisation.model_dump(by_alias=True, mode="json")
    url = service.endpoint.rstrip("/") + "/credentials"
    headers = {"Authorization": "Bearer " + participant.sts.id_token(authority, token=grant)}
    try:
        response = await client.post(url, json=message, headers=headers)
    except httpx.HTTPError as error:
        raise OnboardingError(f"{url}: {error!r}") from None
    if response.status_code != httpx.codes.CREATED:
        raise OnboardingError(f"{url} answered {response.status_code}: {response.text[:500]}")
    status: dict[str, Any] = response.json()
    return status
