"""The registry's HTTP API: the operator's list, suspension and reinstatement (``X-Api-Key``,
under ``/admin``, audited), and the members' list of active participants (DCP-authenticated,
``/registry/v1``) with their public facts and DSP addresses."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.engine import Engine
from sqlmodel import Session

from broker.deps import EngineDep, MemberDep, OperatorDecider, OperatorDep, ParticipantDep
from broker.registry import standing
from broker.registry.machine import State
from broker.registry.store import (
    Filters,
    RegisteredParticipant,
    held_credentials,
    participants,
    roles_of,
    utc,
)
from identity.credentials import CredentialType
from policy.operands import Grade, check_region_code
from service.http import BadRequestError
from service.refusals import refusals

admin = APIRouter(
    prefix="/admin/participants", tags=["registry"], dependencies=[OperatorDep],
    responses=refusals(400, 401, 404, 409, 413, 422, 503),
)  # fmt: skip
members = APIRouter(
    prefix="/registry/v1", tags=["registry"], responses=refusals(400, 401, 403, 422, 503)
)

Role = Annotated[
    str | None,
    Query(
        description="a role its credentials give: "
        + ", ".join(r for t in CredentialType if (r := t.role) is not None),
        max_length=40,
    ),
]
Region = Annotated[
    str | None, Query(description="a division code: 440100 holds 440106", max_length=6)
]
Offset = Annotated[int, Query(ge=0, le=10_000_000)]
Limit = Annotated[int, Query(ge=1, le=500)]


def _filters(
    state: State | None, region: str | None, role: str | None, grade: Grade | None
) -> Filters:
    if region is not None:
        try:
            check_region_code(region)
        except ValueError as error:
            raise BadRequestError(400, "bad_region", str(error)) from None
    roles = {r for t in CredentialType if (r := t.role) is not None}
    if role is not None and role not in roles:
        raise BadRequestError(400, "unknown_role", f"no role {role!r}: one of {sorted(roles)}")
    return Filters(state, region, role, None if grade is None else grade.value)


def _view(
    session: Session, row: RegisteredParticipant, now: datetime, *, operator: bool
) -> dict[str, Any]:
    held = held_credentials(session, row.did, now)
    view: dict[str, Any] = {
        "participant": row.did,
        "organisation": {"name": row.name, "creditCode": row.credit_code, "region": row.region},
        "roles": roles_of(held),
        "dataGrade": row.data_grade,
        "dspAddress": row.dsp_address,
    }
    if operator:
        view.update(
            {
                "state": row.state,
                "reason": row.reason,
                "credentials": sorted({c.credential_type for c in held}),
                "onboardedAt": utc(row.onboarded_at).isoformat(),
                "updatedAt": utc(row.updated_at).isoformat(),
            }
        )
    return view


def _page(
    engine: Engine, now: datetime, filters: Filters, offset: int, limit: int, *, operator: bool
) -> dict[str, Any]:
    with Session(engine) as session:
        rows = participants(session, filters, now=now, offset=offset, limit=limit + 1)
        items = [_view(session, row, now, operator=operator) for row in rows[:limit]]
    return {"items": items, "offset": offset, "next": offset + limit if len(rows) > limit else None}


@admin.get("")
def list_participants(
    engine: EngineDep,
    participant: ParticipantDep,
    state: State | None = None,
    region: Region = None,
    role: Role = None,
    data_grade: Annotated[Grade | None, Query(alias="dataGrade")] = None,
    offset: Offset = 0,
    limit: Limit = 50,
) -> dict[str, Any]:
    """Every registered participant, by DID, a page at a time (``next``: the offset of the next
    page, or null); filtered by standing, region (with the divisions in it), role, data grade."""
    filters = _filters(state, region, role, data_grade)
    return _page(engine, participant.clock(), filters, offset, limit, operator=True)


class Suspension(BaseModel):
    model_config = ConfigDict(extra="forbid")
    participant: str = Field(min_length=1, max_length=2048)
    reason: str = Field(min_length=1, max_length=1000)


class Reinstatement(BaseModel):
    model_config = ConfigDict(extra="forbid")
    participant: str = Field(min_length=1, max_length=2048)


@admin.post("/suspend")
def suspend(
    body: Suspension, engine: EngineDep, participant: ParticipantDep, operator: OperatorDecider
) -> dict[str, Any]:
    """Suspend: its credentials' status entries are set now (verifiers refuse them once their
    status-list cache refreshes; the broker at once)."""
    now = participant.clock()
    with Session(engine) as session:
        row = standing.suspend(session, body.participant, body.reason, operator, now)
        return _view(session, row, now, operator=True)


@admin.post("/reinstate")
def reinstate(
    body: Reinstatement, engine: EngineDep, participant: ParticipantDep, operator: OperatorDecider
) -> dict[str, Any]:
    """Reinstate a suspended participant: the entries of its unrevoked credentials are
    cleared."""
    now = participant.clock()
    with Session(engine) as session:
        row = standing.reinstate(session, body.participant, operator, now)
        return _view(session, row, now, operator=True)


@members.get("/participants")
def active_participants(
    _member: MemberDep,
    engine: EngineDep,
    participant: ParticipantDep,
    region: Region = None,
    role: Role = None,
    offset: Offset = 0,
    limit: Limit = 50,
) -> dict[str, Any]:
    """The active participants with their public facts and DSP addresses, for members."""
    filters = _filters(State.ACTIVE, region, role, None)
    return _page(engine, participant.clock(), filters, offset, limit, operator=False)
