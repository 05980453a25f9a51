"""The management API's view of the credentials this participant holds (header X-Api-Key):
each with its type, issuer, validity period and what the holder believes of it now (valid,
expired, not yet valid, revoked, or unknown while its status list cannot be read), and the
operator's removal of one. Only credentials believed valid (or unknown) are presented to
verifiers; a removed one never again. The credentials themselves (their JWTs) are not shown."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response

from connector.deps import ManagementError, ParticipantDep, require_manager
from connector.management.query import Limit, Offset
from connector.management.query import page as _page
from connector.management.views import HeldCredentialView, Page
from identity.credential_service import Holding
from identity.credentials import CredentialType
from service.refusals import refusals

router = APIRouter(
    prefix="/management/v1/credentials",
    tags=["management"],
    dependencies=[Depends(require_manager)],
    responses=refusals(401, 404, 422, 503),
)


def holding_view(held: Holding) -> dict[str, Any]:
    return {
        "id": held.id,
        "type": held.type.value,
        "issuer": held.issuer,
        "issuedAt": held.issued_at.isoformat(),
        "expiresAt": held.expires_at.isoformat(),
        "receivedAt": held.received_at.isoformat(),
        "status": held.belief.value,
        "statusReason": held.why,
        "statusEntry": None
        if held.status is None
        else {"statusListCredential": held.status.list_url, "statusListIndex": held.status.index},
        "presented": held.belief.presented,
    }


@router.get("", response_model=Page[HeldCredentialView])
async def list_credentials(
    participant: ParticipantDep,
    offset: Offset = 0,
    limit: Limit = 50,
    credential_type: Annotated[CredentialType | None, Query(alias="type")] = None,
) -> dict[str, Any]:
    types = None if credential_type is None else frozenset({credential_type})
    held = await participant.credential_service.holdings(types, offset=offset, limit=limit + 1)
    return _page([holding_view(h) for h in held], offset, limit)


@router.delete("/{credential_id:path}", status_code=204)
def remove_credential(credential_id: str, participant: ParticipantDep) -> Response:
    if not participant.credential_service.remove(credential_id):
        raise ManagementError(404, "not_found", f"no held credential {credential_id}")
    return Response(status_code=204)
