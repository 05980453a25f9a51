"""The DSP catalog endpoints (Catalog HTTPS Binding): provider side.

Every request is authenticated (DCP); a party sees only the offers whose access policy admits
it, and a dataset without any offer for it does not exist for it (404). Pages are linked with
the ``Link`` header (rel ``next`` / ``previous``) as the binding says; the continuation token is
the last asset id of the page before (keyset: :mod:`connector.catalog.pages`).

Each page carries a strong ``ETag``; a request whose ``If-None-Match`` names the page's current
validator is answered ``304 Not Modified`` with its ``ETag`` and ``Link`` and no body. The
catalog request is a POST but a safe read (as HTTP's QUERY method, whose conditional requests
are answered as GET's): the broker's crawler re-reads only the pages that changed. A client
that sends no ``If-None-Match`` gets every page in full, as before.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from sqlmodel import Session

from connector.catalog import messages
from connector.catalog.offers import admitted_definitions, offers_for
from connector.catalog.pages import BadTokenError, after_token, matches, page_tag, token_for
from connector.catalog.store import Asset, assets_page, start_of_previous
from connector.deps import EngineDep, ParticipantDep, SettingsDep, peer_dependency, read_message
from connector.protocol import DSP_CONTEXT, DSP_REFUSALS, DspError
from identity.verifier import Peer

router = APIRouter(prefix="/dsp/catalog", tags=["dsp catalog"], responses=DSP_REFUSALS)
PeerDep = Annotated[Peer, Depends(peer_dependency("CatalogError"))]


def _after(token: str | None) -> str | None:
    try:
        return after_token(token)
    except BadTokenError:
        raise DspError(
            400, "CatalogError", "bad_continuation_token", "unknown continuationToken"
        ) from None


@router.post(
    "/request",
    response_model=dict[str, Any],
    responses={304: {"description": "the page is unchanged since the ETag named"}},
)
async def request_catalog(
    request: Request,
    peer: PeerDep,
    participant: ParticipantDep,
    settings: SettingsDep,
    engine: EngineDep,
    continuation_token: Annotated[str | None, Query(alias="continuationToken")] = None,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    message = await read_message(request, messages.CatalogRequestMessage, "CatalogError")
    if message.filter:
        raise DspError(
            400, "CatalogError", "unsupported_filter", "catalog filters are not supported"
        )
    after, size = _after(continuation_token), settings.catalog_page_size
    page = assets_page(engine, after, size + 1)
    more, page = len(page) > size, page[:size]
    admitted = admitted_definitions(engine, peer.did, peer.facts(), participant.clock())
    endpoint = f"{settings.base_url}/dsp"
    domains = settings.domains
    shown = json.dumps([participant.did, endpoint, size, domains.view()], ensure_ascii=False)
    tag = page_tag(peer=peer, admitted=admitted, assets=page, more=more, after=after, shown=shown)
    here = f"{settings.base_url}/dsp/catalog/request"
    links = []
    if more:
        links.append(f'<{here}?continuationToken={token_for(page[-1].id)}>; rel="next"')
    if after is not None:
        before = start_of_previous(engine, after, size)
        previous = here if before is None else f"{here}?continuationToken={token_for(before)}"
        links.append(f'<{previous}>; rel="previous"')
    headers = {"ETag": tag} | ({"Link": ", ".join(links)} if links else {})
    if matches(if_none_match, tag):
        return Response(status_code=304, headers=headers)
    service_id = messages.data_service(participant.did, endpoint)["@id"]
    datasets = [
        messages.dataset(asset, offers, service_id, domains.get(asset.domain))
        for asset in page
        if (offers := offers_for(asset, admitted, participant.did))
    ]
    body = json.dumps(
        messages.catalog(participant.did, endpoint, datasets),
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return Response(body.encode(), media_type="application/json", headers=headers)


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
