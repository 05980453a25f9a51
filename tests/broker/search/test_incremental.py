"""Incremental refresh against a provider in memory that gives each page a validator, on SQLite
and PostgreSQL: the validators of the last good crawl are sent back; pages answered 304 are
neither parsed nor written again (their rows untouched), a page answered in full is read and
only its changes are written; a 304 to a request that named no validator is refused; a
provider that moved, or whose datasets were dropped, is read in full again."""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from broker.search.crawler import Crawler
from broker.search.store import CatalogueDataset, CataloguePage, CrawlState
from tests.broker.search.test_crawler import (
    GOOD,
    GRACE,
    Clock,
    World,
    by_provider,
    catalog,
    dataset,
    stored,
)


class Tagged:
    """A provider whose pages carry an ETag (a digest of the page) and answer 304 to it."""

    def __init__(self, pages: list[list[dict[str, Any]]], host: str = "good.test") -> None:
        self.pages, self.host = pages, host
        self.full: list[int] = []
        self.unchanged: list[int] = []
        self.honour = True

    def tag(self, number: int) -> str:
        packed = json.dumps(self.pages[number], sort_keys=True).encode()
        return '"' + hashlib.sha256(packed).hexdigest()[:32] + '"'

    def __call__(self, request: httpx.Request) -> httpx.Response:
        number = int(request.url.params.get("continuationToken", "0"))
        headers = {"ETag": self.tag(number)}
        if number + 1 < len(self.pages):
            headers["Link"] = (
                f"<https://{self.host}/dsp/catalog/request?continuationToken={number + 1}>; "
                'rel="next"'
            )
        if self.honour and request.headers.get("if-none-match") == self.tag(number):
            self.unchanged.append(number)
            return httpx.Response(304, headers=headers)
        self.full.append(number)
        return httpx.Response(200, json=catalog(GOOD, self.pages[number]), headers=headers)


def pages_of(count: int = 6, size: int = 2) -> list[list[dict[str, Any]]]:
    items = [dataset(GOOD, n) for n in range(count)]
    return [items[i : i + size] for i in range(0, count, size)]


def rows(engine: Engine) -> dict[str, tuple[str, Any]]:
    with Session(engine) as session:
        found = session.exec(select(CatalogueDataset).where(CatalogueDataset.provider == GOOD))
        return {row.dataset_id: (row.document, row.changed_at) for row in found}


def crawl_good(crawler: Crawler) -> Any:
    return by_provider(asyncio.run(crawler.crawl_all()))[GOOD]


def test_unchanged_pages_are_not_read_or_stored_again(
    crawler: Crawler, world: World, engine: Engine, clock: Clock
) -> None:
    provider = Tagged(pages_of())
    world.providers["good.test"] = provider
    first = crawl_good(crawler)
    assert (first.datasets, first.added, first.pages_read, first.pages_unchanged) == (6, 6, 3, 0)
    before = rows(engine)
    clock.now += timedelta(minutes=5)
    again = crawl_good(crawler)
    assert again.state is CrawlState.CURRENT
    assert (again.datasets, again.added, again.changed, again.removed) == (6, 0, 0, 0)
    assert (again.pages_read, again.pages_unchanged) == (0, 3)
    assert provider.full == [0, 1, 2]  # the first crawl only
    assert provider.unchanged == [0, 1, 2]
    assert rows(engine) == before  # not one row written again


def test_a_change_on_one_page_reads_that_page_only(
    crawler: Crawler, world: World, engine: Engine, clock: Clock
) -> None:
    provider = Tagged(pages_of())
    world.providers["good.test"] = provider
    crawl_good(crawler)
    before = rows(engine)
    provider.pages[1][0] = dataset(GOOD, 2, title="改过的标题")
    clock.now += timedelta(minutes=5)
    report = crawl_good(crawler)
    assert (report.added, report.changed, report.removed) == (0, 1, 0)
    assert (report.pages_read, report.pages_unchanged) == (1, 2)
    assert provider.full == [0, 1, 2, 1]
    after = rows(engine)
    assert json.loads(after["urn:ds:2"][0])["title"] == "改过的标题"
    assert {k: v for k, v in after.items() if k != "urn:ds:2"} == {
        k: v for k, v in before.items() if k != "urn:ds:2"
    }


def test_a_page_that_moves_its_datasets_is_read_and_the_rest_stays(
    crawler: Crawler, world: World, engine: Engine
) -> None:
    provider = Tagged(pages_of())
    world.providers["good.test"] = provider
    crawl_good(crawler)
    del provider.pages[2][1]  # urn:ds:5 withdrawn
    provider.pages[2].append(dataset(GOOD, 9))
    report = crawl_good(crawler)
    assert (report.added, report.changed, report.removed) == (1, 0, 1)
    assert stored(engine, GOOD) == [f"urn:ds:{n}" for n in (0, 1, 2, 3, 4, 9)]


def test_a_kept_page_listing_a_dataset_read_on_another_is_refused(
    crawler: Crawler, world: World, engine: Engine
) -> None:
    provider = Tagged(pages_of())
    world.providers["good.test"] = provider
    crawl_good(crawler)
    provider.pages[2] = [dataset(GOOD, 0)]  # page 0 is unchanged and lists urn:ds:0 too
    report = crawl_good(crawler)
    assert report.state is CrawlState.REFUSED
    assert report.reason is not None
    assert report.reason.startswith("duplicate_dataset")
    assert len(stored(engine, GOOD)) == 6  # what the last good crawl stored


def test_a_304_to_no_validator_is_refused(crawler: Crawler, world: World) -> None:
    world.providers["good.test"] = lambda _request: httpx.Response(304, headers={"ETag": '"x"'})
    report = crawl_good(crawler)
    assert report.state is CrawlState.REFUSED
    assert report.reason is not None
    assert report.reason.startswith("redirected")


def test_without_validators_every_page_is_read(crawler: Crawler, world: World) -> None:
    provider = Tagged(pages_of())
    provider.honour = False  # a provider that ignores If-None-Match
    world.providers["good.test"] = provider
    crawl_good(crawler)
    report = crawl_good(crawler)
    assert (report.pages_read, report.pages_unchanged, report.changed) == (3, 0, 0)


def test_datasets_dropped_after_the_grace_drop_their_validators(
    crawler: Crawler, world: World, engine: Engine, clock: Clock
) -> None:
    provider = Tagged(pages_of())
    world.providers["good.test"] = provider
    crawl_good(crawler)
    del world.providers["good.test"]
    clock.now += GRACE + timedelta(minutes=1)
    assert crawl_good(crawler).datasets == 0
    with Session(engine) as session:
        assert session.exec(select(CataloguePage)).all() == []
    world.providers["good.test"] = provider
    report = crawl_good(crawler)
    assert (report.added, report.pages_read, report.pages_unchanged) == (6, 3, 0)


@pytest.mark.parametrize("moved", ["https://elsewhere.test/dsp"])
def test_a_provider_that_moved_is_read_in_full(
    crawler: Crawler, world: World, engine: Engine, moved: str
) -> None:
    provider = Tagged(pages_of())
    world.providers["good.test"] = provider
    crawl_good(crawler)
    moved_provider = Tagged(provider.pages, host="elsewhere.test")
    world.providers["elsewhere.test"] = moved_provider
    report = asyncio.run(crawler.crawl(GOOD, moved))
    assert (report.pages_read, report.pages_unchanged, report.changed) == (3, 0, 6)
    assert moved_provider.unchanged == []
