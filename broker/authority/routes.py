"""The authority's DCP endpoints (credential issuance protocol) and the operator's admin API."""

from __future__ import annotations

from datetime import UTC
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.engine import Engine
from sqlmodel import Session

from broker.authority.issuer import CredentialRequestMessage, organisation_json
from broker.authority.store import (
    AuthorityEvent,
    CredentialRequest,
    Decision,
    IssuedCredential,
    RequestStatus,
    audit_events,
)
from broker.authority.views import AuditPage, IssuedCredentialView, RequestView
from broker.deps import (
    AuthorityDep,
    EngineDep,
    OperatorDecider,
    OperatorDep,
    ParticipantDep,
    SettingsDep,
)
from broker.registry.store import holders_of
from identity.claims import OrganisationClaims
from identity.credential_service import bearer
from identity.documents import DIDDocument, Service
from identity.presentations import DCP_CONTEXT
from identity.tokens import IdToken, validate_id_token
from service.http import read_json
from service.refusals import refusals

router = APIRouter(tags=["authority"])
admin = APIRouter(
    prefix="/admin", tags=["admin"], dependencies=[OperatorDep],
    responses=refusals(400, 401, 404, 409, 413, 422, 502, 503, 507),
)  # fmt: skip
AuthorizationHeader = Annotated[str | None, Header()]


def did_document(participant: ParticipantDep, settings: SettingsDep) -> dict[str, Any]:
    """The authority's DID document; its IssuerService is where credentials are requested, its
    CredentialService where providers read the broker's own membership when it crawls."""
    services = [
        Service(f"{participant.did}#issuer-service", "IssuerService", settings.base_url),
        Service(
            f"{participant.did}#credential-service", "CredentialService", f"{settings.base_url}/cs"
        ),
    ]
    document: DIDDocument = participant.keyring.document(services)
    return document.to_json()


async def _holder(participant: ParticipantDep, authorization: str | None) -> IdToken:
    return await validate_id_token(
        bearer(authorization), audience=participant.did, resolver=participant.resolver,
        replay=participant.replay, now=participant.clock(),
    )  # fmt: skip


def _status(request: CredentialRequest) -> dict[str, Any]:
    return {
        "@context": [DCP_CONTEXT],
        "type": "CredentialStatus",
        "issuerPid": request.id,
        "holderPid": request.holder_pid,
        "status": request.status,
    }


@router.post("/cs/presentations/query", responses=refusals(400, 401, 403, 413, 501, 503))
async def query_presentations(
    request: Request,
    participant: ParticipantDep,
    settings: SettingsDep,
    authorization: AuthorizationHeader = None,
) -> dict[str, Any]:
    """DCP Resolution API of the broker as a participant: a provider that the crawler asks for
    its catalogue reads the broker's MembershipCredential here (what the broker granted it)."""
    message = await read_json(request, settings.max_body_bytes)
    return await participant.credential_service.query(authorization, message)


@router.get("/metadata")
def metadata(authority: AuthorityDep) -> dict[str, Any]:
    """DCP IssuerMetadata: which credentials this authority issues."""
    return authority.metadata()


@router.post(
    "/credentials", status_code=201, responses=refusals(400, 401, 403, 409, 413, 422, 503, 507)
)
async def request_credentials(
    request: Request,
    response: Response,
    authority: AuthorityDep,
    participant: ParticipantDep,
    settings: SettingsDep,
    authorization: AuthorizationHeader = None,
) -> dict[str, Any]:
    """DCP credential request. The ID token's ``token`` claim lets us deliver to the holder."""
    id_token = await _holder(participant, authorization)
    message = CredentialRequestMessage.parse(await read_json(request, settings.max_body_bytes))
    created = await authority.receive(id_token.issuer, id_token.token, message)
    response.headers["Location"] = f"/requests/{created.id}"
    return _status(created)


@router.get("/requests/{request_id}", responses=refusals(401, 403, 404, 422, 503))
async def request_status(
    request_id: str, authority: AuthorityDep, participant: ParticipantDep,
    authorization: AuthorizationHeader = None,
) -> dict[str, Any]:  # fmt: skip
    """Only the holder that made a request may read its status."""
    id_token = await _holder(participant, authorization)
    return _status(authority.request(request_id, holder=id_token.issuer))


@router.get(
    "/status/{list_id}",
    response_class=Response,
    responses={
        200: {
            "description": "The status list credential",
            "content": {"application/vc+jwt": {"schema": {"type": "string"}}},
        },
        **refusals(404, 422, 503),
    },
)
def status_list(list_id: str, authority: AuthorityDep) -> PlainTextResponse:
    """The StatusList2021Credential (a VC JWT) for revocation checks."""
    return PlainTextResponse(authority.status_list(list_id), media_type="application/vc+jwt")


@router.get("/trusted-issuers")
def trusted_issuers(authority: AuthorityDep) -> dict[str, list[str]]:
    """Which issuer is trusted for which credential type in this data space."""
    return authority.trusted_issuers()


class Approval(BaseModel):
    model_config = ConfigDict(extra="forbid")
    organisation: OrganisationClaims


class Rejection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=1000)


def _request_view(
    engine: Engine, request: CredentialRequest, credit_code: str | None = None
) -> dict[str, Any]:
    """The request, with a warning for each other participant that holds its credit code
    (``credit_code``: the one issued; by default the one the applicant stated)."""
    stated = organisation_json(request)
    code = credit_code or (stated or {}).get("creditCode")
    warnings = []
    if isinstance(code, str):
        with Session(engine) as session:
            warnings = [
                f"credit code {code} is already held by {other.did} ({other.state})"
                for other in holders_of(session, code, request.holder)
            ]
    return {
        **_status(request),
        "holder": request.holder,
        "credentialTypes": request.credential_types.split(),
        "statedOrganisation": stated,
        "reason": request.reason,
        "createdAt": request.created_at.isoformat(),
        "warnings": warnings,
    }


def _credential_view(credential: IssuedCredential) -> dict[str, Any]:
    return {
        "id": credential.id,
        "holder": credential.holder,
        "type": credential.credential_type,
        "issuedAt": credential.issued_at.isoformat(),
        "expiresAt": credential.expires_at.isoformat(),
        "revoked": credential.revoked_at is not None,
    }


@admin.get("/requests", response_model=list[RequestView])
def list_requests(
    authority: AuthorityDep, engine: EngineDep, status: RequestStatus | None = None
) -> list[dict[str, Any]]:
    return [_request_view(engine, r) for r in authority.requests(status)]


@admin.post("/requests/{request_id}/approve", response_model=RequestView)
async def approve(
    request_id: str,
    approval: Approval,
    authority: AuthorityDep,
    engine: EngineDep,
    operator: OperatorDecider,
) -> dict[str, Any]:
    """Issue the requested credentials with these organisation claims, and deliver them
    (warned, not refused, when another participant holds the credit code)."""
    organisation = approval.organisation.organisation()
    approved = await authority.approve(request_id, organisation, operator)
    return _request_view(engine, approved, organisation.credit_code)


@admin.post("/requests/{request_id}/reject", response_model=RequestView)
def reject(
    request_id: str,
    rejection: Rejection,
    authority: AuthorityDep,
    engine: EngineDep,
    operator: OperatorDecider,
) -> dict[str, Any]:
    return _request_view(engine, authority.reject(request_id, rejection.reason, operator))


@admin.get("/credentials", response_model=list[IssuedCredentialView])
def list_credentials(authority: AuthorityDep, holder: str | None = None) -> list[dict[str, Any]]:
    return [_credential_view(c) for c in authority.credentials(holder)]


@admin.post("/credentials/{credential_id}/revoke", response_model=IssuedCredentialView)
def revoke(
    credential_id: str, authority: AuthorityDep, operator: OperatorDecider
) -> dict[str, Any]:
    """Revoke: the status list flips now; verifiers see it once their cache refreshes."""
    return _credential_view(authority.revoke(credential_id, operator))


def _event_view(event: AuthorityEvent) -> dict[str, Any]:
    occurred_at = event.occurred_at  # SQLite keeps no zone; only UTC is ever stored
    occurred_at = occurred_at if occurred_at.tzinfo else occurred_at.replace(tzinfo=UTC)
    return {
        "id": event.id,
        "occurredAt": occurred_at.isoformat(),
        "decision": event.decision,
        "subject": event.subject,
        "decidedBy": event.decided_by,
        "operatorKeyId": event.operator_key_id,
        "requestId": event.request_id,
        "credentialId": event.credential_id,
        "detail": event.detail,
    }


@admin.get("/audit", response_model=AuditPage)
def list_audit_events(
    engine: EngineDep,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    subject: Annotated[str | None, Query(max_length=2048)] = None,
    decision: Decision | None = None,
) -> dict[str, Any]:
    """The authority's decisions, newest first, a page at a time (``next``: the offset of the
    next page, or null)."""
    with Session(engine) as session:
        rows = audit_events(
            session, offset=offset, limit=limit + 1, subject=subject, decision=decision
        )
    return {
        "items": [_event_view(row) for row in rows[:limit]],
        "offset": offset,
        "next": offset + limit if len(rows) > limit else None,
    }
