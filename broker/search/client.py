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

Incremental: a page the last good crawl read with a validator (``ETag``) is asked for with
``If-None-Match``; a ``304 Not Modified`` means its datasets are those stored, and the page
after it is the one stored (nothing is parsed or stored again). A ``304`` to a request that
named no validator is refused. A page answered in full replaces what was kept of it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import anyio
import httpx

from broker.search.messages import DSP_CONTEXT, CatalogueRefusedError, CrawledDataset, parse_catalog
from broker.search.store import PageRecord
from identity.errors import IdentityError, Reason
from identity.fetch import Limits, fetch
from identity.participant import Participant
from identity.presentations import EVERY_SCOPE
from service.collection import collection_paused
from service.destinations import DestinationError, Destinations, Purpose
from service.limits import MAX_JSON_DEPTH, nests_deeper, too_deep

REQUEST: Final = {"@context": [DSP_CONTEXT], "@type": "CatalogRequestMessage"}
MAX_ETAG: Final = 200


@dataclass(frozen=True)
class Catalogue:
    """A provider's catalogue as one crawl found it."""

    datasets: list[CrawledDataset]
    """The datasets of the pages read in full."""
    kept: list[str]
    """The ids of the datasets of pages the provider said were unchanged (304)."""
    pages: list[PageRecord]
    """Every page, in order, with its validator ("" when it gave none)."""

    unchanged: int = 0
    """How many of the pages were answered 304."""

    @property
    def size(self) -> int:
        return len(self.datasets) + len(self.kept)


@dataclass(frozen=True)
class _Unchanged:
    """The provider answered 304 to the page's validator."""


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
    known: Mapping[str, PageRecord] | None = None,
) -> Catalogue:
    """Every dataset of ``provider``'s catalogue that it shows the broker, or a refusal;
    ``known``: the pages of the last good crawl, by URL (their validators are sent)."""
    try:
        with anyio.fail_after(limits.total_timeout_s):
            return await _pages(
                participant, client, destinations, provider, dsp_address, limits, known or {}
            )
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
    known: Mapping[str, PageRecord],
) -> Catalogue:
    try:
        first = destinations.check(dsp_address.rstrip("/") + "/catalog/request", Purpose.CATALOGUE)
    except DestinationError as error:
        raise CatalogueRefusedError("bad_address", str(error)) from None
    url: httpx.URL | None = first
    seen: set[str] = set()
    listed: set[str] = set()
    found: list[CrawledDataset] = []
    kept: list[str] = []
    pages: list[PageRecord] = []
    unchanged = 0
    while url is not None:
        if str(url) in seen:
            raise CatalogueRefusedError("pagination_loop", f"page {url} was already read")
        if len(seen) >= limits.max_pages:
            raise CatalogueRefusedError("too_many_pages", f"more than {limits.max_pages} pages")
        seen.add(str(url))
        before = known.get(str(url))
        answer = await _page(
            participant, client, provider, url, limits, None if before is None else before.etag
        )
        if isinstance(answer, _Unchanged):
            assert before is not None  # noqa: S101 - _page answers so only to a validator
            page = before
            kept += before.dataset_ids
            unchanged += 1
        else:
            body, following, etag = answer
            with collection_paused():  # the page's tree is freed as soon as it is read
                datasets = parse_catalog(_json(body, url), provider)
            page = PageRecord(str(url), etag, tuple(d.dataset_id for d in datasets), following)
            found += datasets
        for identifier in page.dataset_ids:
            if identifier in listed:
                raise CatalogueRefusedError(
                    "duplicate_dataset", f"dataset {identifier!r} is listed twice"
                )
            listed.add(identifier)
        pages.append(page)
        if len(listed) > limits.max_datasets:
            raise CatalogueRefusedError("too_large", f"more than {limits.max_datasets} datasets")
        url = None if page.next_url is None else _next(destinations, first, url, page.next_url)
    return Catalogue(found, kept, pages, unchanged)


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
    etag: str | None,
) -> tuple[bytes, str | None, str] | _Unchanged:
    """The page's body, its ``next`` link and its validator ("" if it gave none usable), or
    :class:`_Unchanged` when it answered 304 to ``etag``."""
    token = participant.sts.bearer_for(provider, EVERY_SCOPE)
    headers = {"Authorization": f"Bearer {token}"}
    if etag:
        headers["If-None-Match"] = etag
    try:
        answer = await fetch(
            client, "POST", str(url), Limits(limits.max_page_bytes, limits.page_timeout_s),
            unavailable=Reason.UNRESOLVABLE_DID, oversized=Reason.OVERSIZED_TOKEN,
            json_body=REQUEST, headers=headers,
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
    if status == httpx.codes.NOT_MODIFIED and etag:
        return _Unchanged()
    if 300 <= status < 400:
        raise CatalogueRefusedError("redirected", f"{url} answered {status}: not followed")
    if status != httpx.codes.OK:
        raise CatalogueRefusedError("not_answered", f"{url} answered {status}")
    if nests_deeper(answer.body, MAX_JSON_DEPTH):
        raise CatalogueRefusedError("schema_invalid", f"{url}: {too_deep(MAX_JSON_DEPTH)}")
    given = answer.etag or ""
    usable = given if 0 < len(given) <= MAX_ETAG and given.isascii() and given.isprintable() else ""
    return answer.body, answer.links.get("next"), usable


def _json(body: bytes, url: httpx.URL) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise CatalogueRefusedError("schema_invalid", f"{url}: not JSON") from None
