"""The management API's view of the outbox (header X-Api-Key): what was sent, what is still
being retried, and what was given up (refused for good, or retried until the delivery
deadline), with the operator's retry of a given-up message. Bodies are never shown: they may
carry data-plane tokens."""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Path

from connector.deps import ManagementError, OutboxDep, require_manager
from connector.management.query import Limit, Offset
from connector.management.query import page as _page
from connector.outbox import Delivery, OutboxMessage
from service.refusals import refusals

router = APIRouter(
    prefix="/management/v1/outbox", tags=["management"], dependencies=[Depends(require_manager)],
    responses=refusals(401, 404, 409, 422, 503),
)  # fmt: skip


def message_view(message: OutboxMessage) -> dict[str, Any]:
    return {
        "id": message.id,
        "processId": message.process_id,
        "kind": message.kind,
        "audience": message.audience,
        "url": message.url,
        "status": message.status,
        "attempts": message.attempts,
        "lastError": message.last_error,
        "nextAttemptAt": message.next_attempt_at.isoformat(),
        "createdAt": message.created_at.isoformat(),
        "retriedAt": None if message.retried_at is None else message.retried_at.isoformat(),
    }


@router.get("")
def list_messages(
    outbox: OutboxDep, offset: Offset = 0, limit: Limit = 50, status: Delivery | None = None
) -> dict[str, Any]:
    found = outbox.messages(status=status, offset=offset, limit=limit + 1)
    return _page([message_view(m) for m in found], offset, limit)


MAX_ID: Final = 2**63 - 1
"""The largest id a database's integer key holds: a larger one is refused (422), not a 500."""


@router.post("/{message_id}/retry")
def retry_message(
    message_id: Annotated[int, Path(ge=1, le=MAX_ID)], outbox: OutboxDep
) -> dict[str, Any]:
    retried = outbox.retry(message_id)
    if retried is None:
        raise ManagementError(404, "not_found", f"no outbox message {message_id}")
    if retried.status != Delivery.PENDING:
        raise ManagementError(409, "not_given_up", f"message {message_id} is {retried.status}")
    return message_view(retried)
