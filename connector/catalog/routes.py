"""The DSP catalog endpoints (Catalog HTTPS Binding): provider side.

Every request is authenticated (DCP); a party sees only the offers whose access policy admits
it, and a dataset without any offer for it does not exist for it (404). Pages are linked with
the ``Link`` header (rel ``next`` / ``previous``) as the binding says; the continuation token is
an offset.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from sqlmodel import Session

from connector.catalog import messages
from connector.catalog.offers import admitted_definitions, offers_for
from connector.catalog.store import Asset, assets_page
from connector.deps import EngineDep, ParticipantDep, SettingsDep, peer_dependency, read_message
from connector.protocol import DSP_CONTEXT, DSP_REFUSALS, DspError
from identity.verifier import Peer

router = APIRouter(prefix="/dsp/catalog", tags=["dsp catalog"], responses=DSP_REFUSALS)
PeerDep = Annotated[Peer, Depends(peer_dependency("CatalogError"))]


def _offset(token: str | None) -> int:
    if token is None:
        return 0
    if not token.isdigit() or len(token) > 12:
        raise DspError(400, "CatalogError", "bad_continuation_token", "unknown continuationToken")
    return int(token)


@router.post("/request")
async def request_catalog(
    request: Request,
    response: Response,
    peer: PeerDep,
    participant: ParticipantDep,
    settings: SettingsDep,
    engine: EngineDep,
    continuation_token: Annotated[str | None, Query(alias="continuationToken")] = None,
) -> dict[str, Any]:
    message = await read_message(request, messages.CatalogRequestMessage, "CatalogError")
    if message.filter:
        raise DspError(
            400, "CatalogError", "unsupported_filter", "catalog filters are not supported"
        )
    offset, size = _offset(continuation_token), settings.catalog_page_size
    page = assets_page(engine, offset, size + 1)
    admitted = admitted_definitions(engine, peer.did, peer.facts(), participant.clock())
    endpoint = f"{settings.base_url}/dsp"
    service_id = messages.data_service(participant.did, endpoint)["@id"]
    domains = settings.domains
    datasets = [
        messages.dataset(asset, offers, service_id, domains.get(asset.domain))
        for asset in page[:size]
        if (offers := offers_for(asset, admitted, participant.did))
    ]
    here = f"{settings.base_url}/dsp/catalog/request?continuationToken="
    links = []
    if len(page) > size:
        links.append(f'<{here}{offset + size}>; rel="next"')
    if offset > 0:
        links.append(f'<{here}{max(0, offset - size)}>; rel="previous"')
    if links:
        response.headers["Link"] = ", ".join(links)
    return messages.catalog(participant.did, endpoint, datasets)


@router.get("/datasets/{dataset_id:path}")
async def get_dataset(
    dataset_id: str,
    peer: PeerDep,
    participant: ParticipantDep,
    settings: SettingsDep,
    engine: EngineDep,
) -> dict[str, Any]:

    with Session(engine) as session:
        asset = session.get(Asset, dataset_id)
    admitted = admitted_definitions(engine, peer.did, peer.facts(), participant.clock())
    offers = offers_for(asset, admitted, participant.did) if asset is not None else []
    if asset is None or not offers:
        raise DspError(404, "CatalogError", "not_found", f"no dataset {dataset_id} for {peer.did}")
    service_id = messages.data_service(participant.did, f"{settings.base_url}/dsp")["@id"]
    domain = settings.domains.get(asset.domain)
    return {"@context": [DSP_CONTEXT], **messages.dataset(asset, offers, service_id, domain)}
