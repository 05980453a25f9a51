"""The federated catalogue's search API for members (DCP) and the operator (``X-Api-Key``):
``GET /catalogue/v1/datasets``. Full text in Chinese and English over titles, keywords and
descriptions, filters and facets with counts (domain, grade, region with its parents,
provider, personal information), sorted by relevance or recency, a page at a time. Each hit
names the provider's DID, its DSP address and the dataset's id there: the consumer negotiates
with the provider directly, the broker is never in the data path.

Bad input is refused with a typed 400 (an unknown parameter, a query too long or without any
word, a value that is not one of a facet's); whatever a query holds is searched as literal
words (:mod:`broker.search.tokens`)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Annotated, Any, Final

from fastapi import APIRouter, Query, Request, Response
from sqlmodel import Session, col, select

from broker.deps import (
    CrawlerDep,
    EngineDep,
    MemberDep,
    OperatorDep,
    SearcherDep,
    SettingsDep,
)
from broker.registry.store import utc
from broker.search.crawler import CrawlReport
from broker.search.messages import DSP_CONTEXT
from broker.search.store import (
    CatalogueDataset,
    Facet,
    Hit,
    ProviderCrawl,
    Search,
    Sort,
    search,
    search_hits,
)
from broker.search.tokens import query_tokens
from policy.operands import Grade, check_region_code
from service.http import BadRequestError, read_json
from service.refusals import refusals

router = APIRouter(
    prefix="/catalogue/v1", tags=["catalogue"], responses=refusals(400, 401, 403, 422, 503)
)
admin = APIRouter(
    prefix="/admin/catalogue", tags=["catalogue"], dependencies=[OperatorDep],
    responses=refusals(401, 409, 422, 503),
)  # fmt: skip

MAX_QUERY_CHARS: Final = 200
MAX_OFFSET: Final = 10_000
PARAMETERS: Final = frozenset(
    {"q", "domain", "grade", "region", "provider", "personalInformation", "sort", "offset", "limit"}
)
_DOMAIN: Final = re.compile(r"[a-z0-9][a-z0-9-]{0,99}")


def _refuse(reason: str, message: str) -> BadRequestError:
    return BadRequestError(400, reason, message)


def _hit(hit: Hit) -> dict[str, Any]:
    row: CatalogueDataset = hit.dataset
    document = json.loads(row.document)
    return {
        "datasetId": row.dataset_id,
        "provider": row.provider,
        "dspAddress": row.dsp_address,
        "title": json.loads(row.titles),
        "description": json.loads(row.descriptions),
        "keyword": json.loads(row.keywords),
        "domain": row.domain,
        "domainName": document.get("kexin:domainName"),
        "dataGrade": row.grade,
        "region": row.region,
        "personalInformation": row.personal_information,
        "version": row.version,
        "registrationCode": row.registration_code,
        "offers": document.get("hasPolicy", []),
        "changedAt": utc(row.changed_at).isoformat(),
        "score": hit.score,
    }


def _search(
    q: str | None,
    domain: str | None,
    grade: str | None,
    region: str | None,
    provider: str | None,
    personal_information: bool | None,
    sort: Sort,
    offset: int,
    limit: int,
) -> Search:
    """The search these parameters ask for, or a typed 400 (the search API's and the DSP
    catalogue's filter alike)."""
    tokens: tuple[str, ...] = ()
    if q is not None and q.strip():
        if len(q) > MAX_QUERY_CHARS:
            raise _refuse("query_too_long", f"a query is at most {MAX_QUERY_CHARS} characters")
        tokens = tuple(query_tokens(q))
        if not tokens:
            raise _refuse("no_search_terms", "the query holds no word to search for")
    if domain is not None and not _DOMAIN.fullmatch(domain):
        raise _refuse("bad_domain", "a domain id is lower-case letters, digits and '-'")
    if region is not None:
        try:
            check_region_code(region)
        except ValueError as error:
            raise _refuse("bad_region", str(error)) from None
    return Search(
        tokens=tokens, domain=domain, grade=grade, region=region, provider=provider,
        personal_information=personal_information, sort=sort, offset=offset, limit=limit,
    )  # fmt: skip


def _facet_view(facet: Facet, pairs: list[tuple[Any, int]]) -> list[dict[str, Any]]:
    if facet is Facet.REGION:
        return [{"value": code, "count": count, "parent": _parent(code)} for code, count in pairs]
    return [{"value": value, "count": count} for value, count in pairs]


def _parent(code: str) -> str | None:
    if code[4:] != "00":
        return code[:4] + "00"
    if code[2:4] != "00":
        return code[:2] + "0000"
    return None


@router.get("/datasets")
def search_datasets(
    request: Request,
    engine: EngineDep,
    _searcher: SearcherDep,
    q: Annotated[str | None, Query(description="words in Chinese or English")] = None,
    domain: Annotated[str | None, Query(description="a scenario domain's id")] = None,
    grade: Annotated[Grade | None, Query()] = None,
    region: Annotated[str | None, Query(description="a division code: 440100 holds 440106")] = None,
    provider: Annotated[str | None, Query(max_length=2048)] = None,
    personal_information: Annotated[bool | None, Query(alias="personalInformation")] = None,
    sort: Sort = Sort.RELEVANCE,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> dict[str, Any]:
    unknown = sorted(set(request.query_params) - PARAMETERS)
    if unknown:
        raise _refuse("unknown_parameter", f"no parameter {unknown[0][:100]!r} here")
    query = _search(
        q, domain, None if grade is None else grade.value, region, provider,
        personal_information, sort, offset, limit,
    )  # fmt: skip
    with Session(engine) as session:
        found = search(session, query)
        items = [_hit(hit) for hit in found.hits]
    return {
        "total": found.total,
        "items": items,
        "facets": {facet.value: _facet_view(facet, pairs) for facet, pairs in found.facets.items()},
        "offset": offset,
        "next": offset + limit
        if offset + limit < found.total and offset + limit <= MAX_OFFSET
        else None,
    }


NOTICE_TYPE: Final = "kexin:CatalogueChangeNotice"


@router.post("/notices", status_code=202, responses=refusals(400, 401, 403, 409, 413, 422, 503))
async def catalogue_changed(
    request: Request, settings: SettingsDep, member: MemberDep, crawler: CrawlerDep
) -> dict[str, Any]:
    """A provider (an active member, authenticated the DCP way: its self-issued token signs the
    notice) says that its catalogue changed: the broker crawls it at once (a burst of notices
    is one crawl). ``{"@type": "kexin:CatalogueChangeNotice", "provider": <its DID>}``; a
    notice for another participant is refused (403)."""
    body = await read_json(request, settings.max_body_bytes)
    if not isinstance(body, dict) or body.get("@type") != NOTICE_TYPE:
        raise _refuse("malformed_notice", f"expected a {NOTICE_TYPE}")
    if body.get("provider") != member.did:
        raise BadRequestError(
            403, "not_your_catalogue", f"{member.did} may only give notice of its own catalogue"
        )
    crawler.notice(member.did)
    return {"provider": member.did, "crawl": "queued"}


def _report(report: CrawlReport) -> dict[str, Any]:
    return {
        "provider": report.provider,
        "state": None if report.state is None else report.state.value,
        "reason": report.reason,
        "datasets": report.datasets,
        "added": report.added,
        "changed": report.changed,
        "removed": report.removed,
        "pagesRead": report.pages_read,
        "pagesUnchanged": report.pages_unchanged,
    }


@admin.post("/crawl")
async def crawl_now(crawler: CrawlerDep) -> dict[str, Any]:
    """Crawl every active provider now (after a round under way, if one is); what each gave
    (``state`` null: its datasets were dropped)."""
    return {"providers": [_report(r) for r in await crawler.crawl_all()]}


@admin.get("/providers")
def crawled_providers(engine: EngineDep) -> list[dict[str, Any]]:
    """How the crawl of each provider stands: current, stale or refused (with the reason), the
    datasets kept, the last attempt and the last good crawl."""
    with Session(engine) as session:
        rows = session.exec(select(ProviderCrawl).order_by(col(ProviderCrawl.provider))).all()
    return [
        {
            "provider": row.provider,
            "dspAddress": row.dsp_address,
            "state": row.state,
            "reason": row.reason,
            "datasets": row.datasets,
            "lastAttemptAt": utc(row.last_attempt_at).isoformat(),
            "lastSuccessAt": None
            if row.last_success_at is None
            else utc(row.last_success_at).isoformat(),
        }
        for row in rows
    ]


dsp = APIRouter(
    prefix="/dsp/catalog", tags=["catalogue"], responses=refusals(400, 401, 403, 413, 503)
)
DSP_PAGE: Final = 100


FILTER_KEYS: Final = PARAMETERS - {"offset", "limit"}
"""A DSP filter's keys: the search API's parameters but its paging (continuationToken's)."""


def _dsp_filter(given: object, offset: int) -> Search | None:
    """A CatalogRequestMessage's ``filter`` (DSP leaves its form to the catalogue): one object
    of the search API's parameters, e.g. ``[{"q": "企业名单", "domain": "finance"}]``, for the
    same results; none: every dataset, by provider."""
    if given is None or given == []:
        return None
    if not isinstance(given, list) or len(given) != 1 or not isinstance(given[0], dict):
        raise _refuse("unsupported_filter", "the filter is one object of search parameters")
    terms: dict[str, Any] = given[0]
    unknown = sorted(set(terms) - FILTER_KEYS)
    if unknown:
        raise _refuse("unsupported_filter", f"no filter {str(unknown[0])[:100]!r} here")
    strings = {k: terms.get(k) for k in FILTER_KEYS - {"personalInformation"}}
    if any(v is not None and not isinstance(v, str) for v in strings.values()):
        raise _refuse(
            "unsupported_filter", "filter values are strings (personalInformation: a boolean)"
        )
    personal = terms.get("personalInformation")
    if personal is not None and not isinstance(personal, bool):
        raise _refuse("unsupported_filter", "personalInformation is true or false")
    grade, sort = strings["grade"], strings["sort"]
    if grade is not None and grade not in {g.value for g in Grade}:
        raise _refuse("unsupported_filter", f"no grade {grade[:50]!r}")
    if sort is not None and sort not in {s.value for s in Sort}:
        raise _refuse("unsupported_filter", f"no sort {sort[:50]!r}")
    if strings["provider"] is not None and len(strings["provider"]) > 2048:
        raise _refuse("unsupported_filter", "a provider is a DID of at most 2,048 characters")
    if offset > MAX_OFFSET:
        raise _refuse("bad_continuation_token", "unknown continuationToken")
    return _search(
        strings["q"], strings["domain"], grade, strings["region"], strings["provider"],
        personal, Sort(sort) if sort else Sort.RELEVANCE, offset, DSP_PAGE + 1,
    )  # fmt: skip


def _continuation(token: str | None) -> int:
    if token is None:
        return 0
    if not token.isdigit() or len(token) > 9:
        raise _refuse("bad_continuation_token", "unknown continuationToken")
    return int(token)


@dsp.post("/request")
async def catalogue_of_catalogues(
    request: Request,
    response: Response,
    engine: EngineDep,
    settings: SettingsDep,
    _searcher: SearcherDep,
    continuation_token: Annotated[str | None, Query(alias="continuationToken")] = None,
) -> dict[str, Any]:
    """The federated catalogue as a DSP 2025-1 Catalog (for DSP clients that expect one): a
    Catalog of the providers' Catalogs, each with its DataService (the provider's DSP address)
    and its datasets as the provider gave them; paged by ``Link`` (rel ``next``), 100 datasets
    a page. With a ``filter`` (the search API's parameters, see :func:`_dsp_filter`), the
    search's hits in its order. For members (DCP) and the operator."""
    body = await read_json(request, settings.max_body_bytes)
    if not isinstance(body, dict) or body.get("@type") != "CatalogRequestMessage":
        raise _refuse("malformed_message", "expected a CatalogRequestMessage")
    context = body.get("@context")
    if not isinstance(context, list) or DSP_CONTEXT not in context:
        raise _refuse("malformed_message", "the @context must list the DSP 2025-1 context")
    offset = _continuation(continuation_token)
    query = _dsp_filter(body.get("filter"), offset)
    with Session(engine) as session:
        rows: Sequence[CatalogueDataset] = (
            session.exec(
                select(CatalogueDataset)
                .order_by(col(CatalogueDataset.provider), col(CatalogueDataset.dataset_id))
                .offset(offset)
                .limit(DSP_PAGE + 1)
            ).all()
            if query is None
            else [hit.dataset for hit in search_hits(session, query)]
        )
    by_provider: dict[str, list[CatalogueDataset]] = {}
    for row in rows[:DSP_PAGE]:
        by_provider.setdefault(row.provider, []).append(row)
    here = f"{settings.base_url}/dsp/catalog/request?continuationToken="
    links = []
    if len(rows) > DSP_PAGE and (query is None or offset + DSP_PAGE <= MAX_OFFSET):
        links.append(f'<{here}{offset + DSP_PAGE}>; rel="next"')
    if offset > 0:
        links.append(f'<{here}{max(0, offset - DSP_PAGE)}>; rel="previous"')
    if links:
        response.headers["Link"] = ", ".join(links)
    broker = settings.authority_id
    document: dict[str, Any] = {
        "@context": [DSP_CONTEXT],
        "@id": f"{broker}#catalog",
        "@type": "Catalog",
        "participantId": broker,
        "service": [
            {
                "@id": f"{broker}#dsp",
                "@type": "DataService",
                "endpointURL": f"{settings.base_url}/dsp",
            }
        ],
    }
    if by_provider:  # the schema wants at least one catalogue, or no "catalog" at all
        document["catalog"] = [
            {
                "@id": f"{provider}#catalog",
                "@type": "Catalog",
                "service": [
                    {
                        "@id": f"{provider}#dsp",
                        "@type": "DataService",
                        "endpointURL": datasets[0].dsp_address,
                    }
                ],
                "dataset": [json.loads(row.document) for row in datasets],
            }
            for provider, datasets in by_provider.items()
        ]
    return document
