"""The crawler's outbound DSP calls: a provider's whole catalogue, every page, as a consumer
asks for it (DSP 2025-1 Catalog HTTPS Binding: ``POST {address}/catalog/request`` with a
CatalogRequestMessage, further pages at the ``Link`` header's ``next``), each request
DCP-authenticated with a fresh self-issued token of the broker.

Each page is read under a deadline and a byte cap (identity's fetch: redirects are never
followed), all pages under a deadline of their own; a page on another origin than the
provider's DSP address, a ``next`` already followed, too many pages or datasets, a dataset
twice, and a page that :mod:`broker.search.messages` refuses make the whole catalogue
refused. A provider that cannot be reached (or answers 5xx, or not in time) is
:class:`UnreachableError`: the caller keeps what it had.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

import anyio
import httpx

from broker.search.messages import DSP_CONTEXT, CatalogueRefusedError, CrawledDataset, parse_catalog
from identity.errors import IdentityError, Reason
from identity.fetch import Limits, fetch
from identity.participant import Participant
from identity.presentations import EVERY_SCOPE
from service.destinations import DestinationError, Destinations, Purpose
from service.limits import MAX_JSON_DEPTH, nests_deeper, too_deep

REQUEST: Final = {"@context": [DSP_CONTEXT], "@type": "CatalogRequestMessage"}


class UnreachableError(Exception):
    """The provider did not answer (in time, or at all)."""


@dataclass(frozen=True)
class CrawlLimits:
    page_timeout_s: float
    total_timeout_s: float
    max_pages: int
    max_page_bytes: int
    max_datasets: int


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port


async def fetch_catalogue(
    participant: Participant,
    client: httpx.AsyncClient,
    destinations: Destinations,
    provider: str,
    dsp_address: str,
    limits: CrawlLimits,
) -> list[CrawledDataset]:
    """Every dataset of ``provider``'s catalogue that it shows the broker, or a refusal."""
    try:
        with anyio.fail_after(limits.total_timeout_s):
            return await _pages(participant, client, destinations, provider, dsp_address, limits)
    except TimeoutError:
        raise UnreachableError(
            f"the catalogue was not complete within {limits.total_timeout_s} s"
        ) from None


async def _pages(
    participant: Participant,
    client: httpx.AsyncClient,
    destinations: Destinations,
    provider: str,
    dsp_address: str,
    limits: CrawlLimits,
) -> list[CrawledDataset]:
    try:
        first = destinations.check(dsp_address.rstrip("/") + "/catalog/request", Purpose.CATALOGUE)
    except DestinationError as error:
        raise CatalogueRefusedError("bad_address", str(error)) from None
    url: httpx.URL | None = first
    seen: set[str] = set()
    found: dict[str, CrawledDataset] = {}
    while url is not None:
        if str(url) in seen:
            raise CatalogueRefusedError("pagination_loop", f"page {url} was already read")
        if len(seen) >= limits.max_pages:
            raise CatalogueRefusedError("too_many_pages", f"more than {limits.max_pages} pages")
        seen.add(str(url))
        body, following = await _page(participant, client, provider, url, limits)
        for dataset in parse_catalog(body, provider):
            if dataset.dataset_id in found:
                raise CatalogueRefusedError(
                    "duplicate_dataset", f"dataset {dataset.dataset_id!r} is listed twice"
                )
            found[dataset.dataset_id] = dataset
        if len(found) > limits.max_datasets:
            raise CatalogueRefusedError("too_large", f"more than {limits.max_datasets} datasets")
        url = None if following is None else _next(destinations, first, url, following)
    return list(found.values())


def _next(destinations: Destinations, first: httpx.URL, here: httpx.URL, link: str) -> httpx.URL:
    try:
        url = destinations.check(str(here.join(link)), Purpose.CATALOGUE)
    except DestinationError as error:
        raise CatalogueRefusedError("bad_link", str(error)) from None
    if _origin(url) != _origin(first) or url.path != first.path:
        raise CatalogueRefusedError("bad_link", f"the next page {url} is not the catalogue's")
    return url


async def _page(
    participant: Participant,
    client: httpx.AsyncClient,
    provider: str,
    url: httpx.URL,
    limits: CrawlLimits,
) -> tuple[Any, str | None]:
    token = participant.sts.bearer_for(provider, EVERY_SCOPE)
    try:
        answer = await fetch(
            client, "POST", str(url), Limits(limits.max_page_bytes, limits.page_timeout_s),
            unavailable=Reason.UNRESOLVABLE_DID, oversized=Reason.OVERSIZED_TOKEN,
            json_body=REQUEST, headers={"Authorization": f"Bearer {token}"},
        )  # fmt: skip
    except IdentityError as error:
        if error.reason is Reason.OVERSIZED_TOKEN:
            raise CatalogueRefusedError(
                "too_large", f"a page over {limits.max_page_bytes} bytes"
            ) from None
        raise UnreachableError(f"{url}: unreachable") from None
    status = answer.status_code
    if status >= httpx.codes.INTERNAL_SERVER_ERROR:
        raise UnreachableError(f"{url} answered {status}")
    if 300 <= status < 400:
        raise CatalogueRefusedError("redirected", f"{url} answered {status}: not followed")
    if status != httpx.codes.OK:
        raise CatalogueRefusedError("not_answered", f"{url} answered {status}")
    if nests_deeper(answer.body, MAX_JSON_DEPTH):
        raise CatalogueRefusedError("schema_invalid", f"{url}: {too_deep(MAX_JSON_DEPTH)}")
    try:
        body = json.loads(answer.body)
    except (ValueError, RecursionError):
        raise CatalogueRefusedError("schema_invalid", f"{url}: not JSON") from None
    return body, answer.links.get("next")
