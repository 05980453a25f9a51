"""The management API's EDRs (header X-Api-Key): ``GET /management/v1/edrs`` lists the pull
transfers this connector has started as the consumer (without their tokens), and
``GET /management/v1/edrs/{transferId}`` answers one's endpoint and token, refreshed first
when it has expired or is about to (:mod:`connector.management.edrs`)."""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Query, Response
from sqlmodel import Session, col, select

from connector.deps import EdrsDep, EngineDep, ManagementError, require_manager
from connector.management.edrs import CONSUMER, PULL_SUFFIX, EdrError, entry
from connector.management.query import Filter, Limit, Offset, Sort, ordered, page
from connector.management.views import EdrEntryView, EdrView, Page
from connector.transfer.machine import State
from connector.transfer.store import TransferProcessRecord
from service.refusals import refusals

router = APIRouter(
    prefix="/management/v1/edrs",
    tags=["management"],
    dependencies=[Depends(require_manager)],
    responses=refusals(400, 401, 422),
)

EDR_SORTS: Final = {
    "createdAt": col(TransferProcessRecord.created_at),
    "counterPartyId": col(TransferProcessRecord.counterparty),
    "agreementId": col(TransferProcessRecord.agreement_id),
}


@router.get("", response_model=Page[EdrEntryView])
def list_edrs(
    engine: EngineDep,
    offset: Offset = 0,
    limit: Limit = 50,
    sort: Sort = None,
    counter_party_id: Annotated[Filter, Query(alias="counterPartyId")] = None,
    agreement_id: Annotated[Filter, Query(alias="agreementId")] = None,
) -> dict[str, Any]:
    """Oldest first unless ``sort`` (``createdAt``, ``counterPartyId``, ``agreementId``) says
    otherwise."""
    query = ordered(
        select(TransferProcessRecord), sort, EDR_SORTS, "createdAt",
        col(TransferProcessRecord.id),
    ).where(
        col(TransferProcessRecord.role) == CONSUMER,
        col(TransferProcessRecord.state) == State.STARTED.value,
        col(TransferProcessRecord.format).endswith(PULL_SUFFIX),
        col(TransferProcessRecord.data_address).is_not(None),
    )  # fmt: skip
    for column, value in (
        (TransferProcessRecord.counterparty, counter_party_id),
        (TransferProcessRecord.agreement_id, agreement_id),
    ):
        if value is not None:
            query = query.where(column == value)
    with Session(engine) as session:
        rows = session.exec(query.offset(offset).limit(limit + 1)).all()
    return page([entry(r) for r in rows], offset, limit)


@router.get(
    "/{transfer_id:path}",
    response_model=EdrView,
    responses=refusals(404, 409, 502),
)
async def get_edr(transfer_id: str, edrs: EdrsDep, response: Response) -> dict[str, Any]:
    """The endpoint and a valid token (refreshed now if it had expired or was about to)."""
    try:
        answer = await edrs.read(transfer_id)
    except EdrError as error:
        raise ManagementError(error.status, error.reason, error.message) from None
    response.headers["Cache-Control"] = "no-store"
    return answer
