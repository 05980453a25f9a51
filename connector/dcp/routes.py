"""The connector's DCP endpoints: its DID document, its Credential Service (presentation
queries, credential delivery), and a probe that shows what it verified about a caller."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Request

from connector.deps import ParticipantDep, SettingsDep
from identity.documents import Service
from service.http import read_json
from service.refusals import refusals

router = APIRouter(tags=["dcp"], responses=refusals(400, 401, 403, 413, 422, 501, 503))
AuthorizationHeader = Annotated[str | None, Header()]


def did_document(participant: ParticipantDep, settings: SettingsDep) -> dict[str, Any]:
    """This participant's DID document (served at the did:web address of its DID): its
    Credential Service, and its DSP catalogue as a ``DataService`` (DSP 2025-1, common
    functionality 'Discovery of Service Endpoints'; the service schema wants the endpoint to end
    in ``/catalog``), which is how the broker's registry finds a connector's DSP address."""
    services = [
        Service(
            f"{participant.did}#credential-service", "CredentialService", f"{settings.base_url}/cs"
        ),
        Service(
            f"{participant.did}#dsp-catalog", "DataService", f"{settings.base_url}/dsp/catalog"
        ),
    ]
    return participant.keyring.document(services).to_json()


@router.post("/cs/presentations/query")
async def query_presentations(
    request: Request,
    participant: ParticipantDep,
    settings: SettingsDep,
    authorization: AuthorizationHeader = None,
) -> dict[str, Any]:
    """DCP Resolution API: a verifier asks for credentials by scope."""
    message = await read_json(request, settings.max_body_bytes)
    return await participant.credential_service.query(authorization, message)


@router.post("/cs/credentials")
async def store_credentials(
    request: Request,
    participant: ParticipantDep,
    settings: SettingsDep,
    authorization: AuthorizationHeader = None,
) -> dict[str, int]:
    """DCP Storage API: an issuer delivers credentials (CredentialMessage)."""
    message = await read_json(request, settings.max_body_bytes)
    return {"stored": await participant.credential_service.deliver(authorization, message)}


@router.get("/identity/peer")
async def verified_peer(
    participant: ParticipantDep, authorization: AuthorizationHeader = None
) -> dict[str, Any]:
    """Authenticate the caller the DCP way and say what was verified about it, and which of
    the credentials it presented did not count, and why."""
    peer = await participant.verifier.authenticate(authorization)
    facts = peer.facts()
    return {
        "participant": peer.did,
        "credentials": [
            {"type": c.type.value, "issuer": c.issuer, "expires": c.expires_at.isoformat()}
            for c in peer.presentation.credentials
        ],
        "refused": [
            {
                "id": r.id,
                "type": r.type,
                "issuer": r.issuer,
                "reason": r.reason.value,
                "message": r.message,
            }
            for r in peer.presentation.refused
        ],
        "membership": facts.membership,
        "roles": sorted(facts.roles),
        "dataGrade": facts.data_grade.value if facts.data_grade else None,
        "region": facts.region,
    }
