"""The management API's search through the broker (header X-Api-Key):
``GET /management/v1/broker/datasets`` asks the broker's federated catalogue
(``CONNECTOR_BROKER_URL``, ``/catalogue/v1/datasets``), authenticated with this connector's DCP
identity (a self-issued token for ``CONNECTOR_BROKER_ID``), and answers its hits: each names
the provider's DID, its DSP address and the dataset's id there, which the data contracts API
and ``dataspace fetch`` take as they are. The broker is only asked; no data passes through it.

The broker's typed 400 (a query without a word, a bad region...) is answered as a 400 with its
reason; the broker unreachable, refusing this connector or answering something else is a 502
``broker_unreachable`` / ``broker_refused``; no broker configured, 409 ``no_broker``."""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

import httpx
from fastapi import APIRouter, Depends, Query, Request
from pydantic import ValidationError

from connector.deps import ManagementError, OutboxDep, SettingsDep, require_manager
from connector.management.routes import peer_refusal
from connector.management.views import BrokerSearchView
from policy.operands import Grade
from service.refusals import refusals

log = logging.getLogger("kexin.connector.broker")

router = APIRouter(
    prefix="/management/v1/broker", tags=["management"], dependencies=[Depends(require_manager)],
    responses=refusals(400, 401, 409, 422, 502, 503),
)  # fmt: skip


@router.get("/datasets", response_model=BrokerSearchView)
async def search_broker(
    request: Request,
    settings: SettingsDep,
    outbox: OutboxDep,
    q: Annotated[str | None, Query(max_length=200, description="words, Chinese or English")] = None,
    domain: Annotated[str | None, Query(max_length=100)] = None,
    grade: Annotated[Grade | None, Query()] = None,
    region: Annotated[str | None, Query(max_length=6)] = None,
    provider: Annotated[str | None, Query(max_length=2048)] = None,
    personal_information: Annotated[bool | None, Query(alias="personalInformation")] = None,
    sort: Literal["relevance", "recency"] | None = None,
    offset: Annotated[int, Query(ge=0, le=10_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> dict[str, Any]:
    """Datasets of the data space that match, from the broker's federated catalogue."""
    if settings.broker_url is None or settings.broker_id is None:
        raise ManagementError(
            409, "no_broker", "no broker is configured (CONNECTOR_BROKER_URL, CONNECTOR_BROKER_ID)"
        )
    params: dict[str, str | int] = {
        name: value
        for name, value in (
            ("q", q),
            ("domain", domain),
            ("grade", None if grade is None else grade.value),
            ("region", region),
            ("provider", provider),
            (
                "personalInformation",
                None if personal_information is None else str(personal_information).lower(),
            ),
            ("sort", sort),
            ("offset", offset),
            ("limit", limit),
        )
        if value is not None
    }
    url = settings.broker_url.rstrip("/") + "/catalogue/v1/datasets"
    client: httpx.AsyncClient = request.app.state.client
    try:
        response = await client.get(
            url, params=params, headers=outbox.authorization_for(settings.broker_id)
        )
    except httpx.HTTPError as error:
        log.info("search at the broker %s failed: %r", url, error)
        raise ManagementError(502, "broker_unreachable", f"{url}: unreachable") from None
    if response.status_code == httpx.codes.BAD_REQUEST:
        reason, message = _refusal(response)
        raise ManagementError(400, reason or "bad_search", message or "the broker refused it")
    if response.status_code != httpx.codes.OK:
        code, reasons = peer_refusal(response)
        raise ManagementError(
            502, "broker_refused", f"the broker answered {response.status_code}",
            {"peerStatus": response.status_code, "peerCode": code, "reasons": reasons},
        )  # fmt: skip
    try:
        answer = response.json()
        if not isinstance(answer, dict):
            raise ValueError("not an object")
        found = BrokerSearchView.model_validate({**answer, "broker": settings.broker_id})
    except (ValueError, ValidationError):
        raise ManagementError(
            502, "broker_refused", "the broker's answer is not a search"
        ) from None
    return found.model_dump(by_alias=True)


def _refusal(response: httpx.Response) -> tuple[str | None, str | None]:
    """The broker's typed refusal (``reason``, ``message``), bounded."""
    try:
        body = response.json()
    except ValueError:
        return None, None
    if not isinstance(body, dict):
        return None, None
    reason, message = body.get("reason"), body.get("message")
    return (
        str(reason)[:100] if isinstance(reason, str) else None,
        str(message)[:500] if isinstance(message, str) else None,
    )
