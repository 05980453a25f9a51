"""The crawler against providers in memory (httpx.MockTransport) on SQLite and PostgreSQL: every
page is read; a withdrawn dataset disappears within one refresh; a provider that does not answer
is stale and keeps its datasets until the grace period has passed; a catalogue that is
schema-invalid, huge, paginates for ever, redirects, or answers with another provider's
datasets is refused with a reason, keeps nothing of that answer, and the other providers are
crawled all the same; a participant no longer active loses its datasets."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from broker.database import migrations
from broker.registry.store import RegisteredParticipant
from broker.search.client import CrawlLimits
from broker.search.crawler import Crawler, CrawlReport
from broker.search.messages import DSP_CONTEXT
from broker.search.store import CatalogueDataset, CrawlState, ProviderCrawl
from identity.credentials import CredentialType, TrustedIssuers
from identity.database import migrations as identity_migrations
from identity.keys import ScryptCost
from identity.participant import build_participant
from service.destinations import Destinations
from storage.migrate import upgrade
from tests.participants import PASSPHRASE

BROKER = "did:web:broker.test"
GOOD, BAD = "did:web:good.test", "did:web:bad.test"
LIMITS = CrawlLimits(
    page_timeout_s=0.5, total_timeout_s=2.0, max_pages=20, max_page_bytes=64 * 1024,
    max_datasets=50,
)  # fmt: skip
GRACE = timedelta(hours=1)


def dataset(provider: str, number: int, **changes: Any) -> dict[str, Any]:
    return {
        "@id": f"urn:ds:{number}",
        "@type": "Dataset",
        "title": [f"数据集{number}", f"dataset {number}"],
        "kexin:dataGrade": "general",
        "hasPolicy": [
            {
                "@id": f"urn:offer:{number}",
                "@type": "Offer",
                "assigner": provider,
                "permission": [{"action": "use"}],
            }
        ],
        "distribution": [
            {"@type": "Distribution", "format": "HttpData-PULL", "accessService": f"{provider}#dsp"}
        ],
        **changes,
    }


def catalog(provider: str, datasets: list[dict[str, Any]]) -> dict[str, Any]:
    body: dict[str, Any] = {
        "@context": [DSP_CONTEXT], "@id": f"{provider}#catalog", "@type": "Catalog",
        "participantId": provider,
    }  # fmt: skip
    if datasets:
        body["dataset"] = datasets
    return body


Page = Callable[[httpx.Request], httpx.Response]


def paged(provider: str, pages: list[list[dict[str, Any]]], host: str) -> Page:
    """A well-behaved provider: ``pages`` linked by continuation tokens."""

    def answer(request: httpx.Request) -> httpx.Response:
        number = int(request.url.params.get("continuationToken", "0"))
        headers = {}
        if number + 1 < len(pages):
            headers["Link"] = (
                f'<https://{host}/dsp/catalog/request?continuationToken={number + 1}>; rel="next"'
            )
        return httpx.Response(200, json=catalog(provider, pages[number]), headers=headers)

    return answer


@dataclass
class World:
    """Providers in memory by host; what each was asked (and with which token)."""

    providers: dict[str, Page] = field(default_factory=dict)
    asked: list[httpx.Request] = field(default_factory=list)
    documents: dict[str, dict[str, Any]] = field(default_factory=dict)
    """DID documents by host; none: 404 (the registry's address stands)."""

    async def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/.well-known/did.json":
            document = self.documents.get(request.url.host)
            return httpx.Response(404) if document is None else httpx.Response(200, json=document)
        self.asked.append(request)
        page = self.providers.get(request.url.host)
        if page is None:
            raise httpx.ConnectError("unreachable", request=request)
        answer = page(request)
        if isinstance(answer, Slow):
            await asyncio.sleep(answer.seconds)
            return httpx.Response(200, json=catalog(BAD, []))
        return answer


class Slow(httpx.Response):
    def __init__(self, seconds: float) -> None:
        super().__init__(200)
        self.seconds = seconds


@dataclass
class Clock:
    now: datetime = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def world() -> World:
    return World()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def crawler(engine: Engine, world: World, clock: Clock) -> Iterator[Crawler]:
    for schema in (migrations(), identity_migrations()):
        upgrade(engine, schema)
    with Session(engine) as session:
        for did, host in ((GOOD, "good.test"), (BAD, "bad.test")):
            session.add(
                RegisteredParticipant(
                    did=did, name="某单位", credit_code="91440101MA59XKQ72B", region="440106",
                    data_grade="general", dsp_address=f"https://{host}/dsp", state="active",
                    onboarded_at=clock.now, updated_at=clock.now,
                )
            )  # fmt: skip
        session.commit()
    client = httpx.AsyncClient(transport=httpx.MockTransport(world.handle))
    participant = build_participant(
        did=BROKER, engine=engine, passphrase=PASSPHRASE, client=client,
        trusted=TrustedIssuers({kind: frozenset({BROKER}) for kind in CredentialType}),
        required=(), destinations=Destinations.of(allow_http=False),
        status_ttl=timedelta(seconds=60), clock=clock, key_cost=ScryptCost(log2_n=10),
    )  # fmt: skip
    yield Crawler(
        engine=engine, participant=participant, client=client,
        destinations=Destinations.of(allow_http=False), limits=LIMITS, grace=GRACE, clock=clock,
    )  # fmt: skip
    asyncio.run(client.aclose())


def stored(engine: Engine, provider: str) -> list[str]:
    with Session(engine) as session:
        rows = session.exec(
            select(CatalogueDataset).where(CatalogueDataset.provider == provider)
        ).all()
        return sorted(row.dataset_id for row in rows)


def by_provider(reports: list[CrawlReport]) -> dict[str, CrawlReport]:
    return {report.provider: report for report in reports}


def good_pages(count: int = 5, size: int = 2) -> list[list[dict[str, Any]]]:
    items = [dataset(GOOD, n) for n in range(count)]
    return [items[i : i + size] for i in range(0, count, size)]


def test_every_page_is_read_with_the_brokers_token(
    crawler: Crawler, world: World, engine: Engine
) -> None:
    world.providers["good.test"] = paged(GOOD, good_pages(), "good.test")
    world.providers["bad.test"] = paged(BAD, [[]], "bad.test")
    reports = by_provider(asyncio.run(crawler.crawl_all()))
    assert reports[GOOD].state is CrawlState.CURRENT
    assert (reports[GOOD].datasets, reports[GOOD].added) == (5, 5)
    assert stored(engine, GOOD) == [f"urn:ds:{n}" for n in range(5)]
    good_requests = [r for r in world.asked if r.url.host == "good.test"]
    assert len(good_requests) == 3
    assert all(r.headers["authorization"].startswith("Bearer ") for r in good_requests)
    assert json.loads(good_requests[0].content)["@type"] == "CatalogRequestMessage"


def test_a_withdrawn_dataset_disappears_within_one_refresh(
    crawler: Crawler, world: World, engine: Engine
) -> None:
    world.providers["good.test"] = paged(GOOD, good_pages(), "good.test")
    asyncio.run(crawler.crawl_all())
    world.providers["good.test"] = paged(GOOD, good_pages(4), "good.test")
    report = by_provider(asyncio.run(crawler.crawl_all()))[GOOD]
    assert (report.added, report.changed, report.removed) == (0, 0, 1)
    assert "urn:ds:4" not in stored(engine, GOOD)


def test_a_provider_that_does_not_answer_is_stale_until_the_grace_ends(
    crawler: Crawler, world: World, engine: Engine, clock: Clock
) -> None:
    world.providers["good.test"] = paged(GOOD, good_pages(), "good.test")
    asyncio.run(crawler.crawl_all())
    good_at = clock.now
    del world.providers["good.test"]
    clock.now += timedelta(minutes=30)
    report = by_provider(asyncio.run(crawler.crawl_all()))[GOOD]
    assert report.state is CrawlState.STALE
    assert len(stored(engine, GOOD)) == 5  # kept
    with Session(engine) as session:
        crawl = session.get(ProviderCrawl, GOOD)
        assert crawl is not None
        assert crawl.state == "stale"
        assert crawl.last_success_at is not None
        assert crawl.last_success_at.replace(tzinfo=UTC) == good_at
    clock.now += GRACE
    assert by_provider(asyncio.run(crawler.crawl_all()))[GOOD].datasets == 0
    assert stored(engine, GOOD) == []


def test_a_slow_provider_is_stale(crawler: Crawler, world: World, engine: Engine) -> None:
    world.providers["good.test"] = paged(GOOD, good_pages(), "good.test")
    asyncio.run(crawler.crawl_all())
    world.providers["good.test"] = lambda _request: Slow(5.0)
    report = by_provider(asyncio.run(crawler.crawl_all()))[GOOD]
    assert report.state is CrawlState.STALE
    assert len(stored(engine, GOOD)) == 5


def looping(request: httpx.Request) -> httpx.Response:
    return httpx.Response(
        200,
        json=catalog(BAD, [dataset(BAD, int(request.url.params.get("continuationToken", "0")))]),
        headers={"Link": '<https://bad.test/dsp/catalog/request?continuationToken=1>; rel="next"'},
    )


def for_ever(request: httpx.Request) -> httpx.Response:
    number = int(request.url.params.get("continuationToken", "0"))
    link = f'<https://bad.test/dsp/catalog/request?continuationToken={number + 1}>; rel="next"'
    return httpx.Response(200, json=catalog(BAD, []), headers={"Link": link})


def answer(body: object, status: int = 200, **headers: str) -> Page:
    return lambda _request: httpx.Response(status, json=body, headers=headers)


HOSTILE = [
    pytest.param(answer({"@type": "Nothing"}), "schema_invalid", id="not-a-catalog"),
    pytest.param(
        lambda _r: httpx.Response(200, content=b"not json"), "schema_invalid", id="not-json"
    ),
    pytest.param(
        lambda _r: httpx.Response(200, content=b"[" * 100 + b"]" * 100),
        "schema_invalid",
        id="nested-deep",
    ),
    pytest.param(
        answer(catalog(BAD, [dataset(BAD, 1, **{"kexin:dataGrade": "secret"})])),
        "schema_invalid",
        id="bad-grade",
    ),
    pytest.param(
        answer(catalog(BAD, [dataset(BAD, 1, hasPolicy=[])])), "schema_invalid", id="no-offer"
    ),
    pytest.param(
        answer(catalog(BAD, [dataset(BAD, 1, hasPolicy=[{"@id": "o", "@type": "Offer"}])])),
        "schema_invalid",
        id="offer-without-rules",
    ),
    pytest.param(
        answer(catalog(BAD, [dataset(BAD, 1, distribution=[{"format": "x"}])])),
        "schema_invalid",
        id="distribution-without-service",
    ),
    pytest.param(
        answer(catalog(BAD, [dataset(BAD, 1, title="x" * 301)])),
        "schema_invalid",
        id="title-too-long",
    ),
    pytest.param(
        answer(catalog(BAD, [{"@id": f"urn:{n}", "@type": "Dataset"} for n in range(3)])),
        "schema_invalid",
        id="datasets-without-offers",
    ),
    pytest.param(
        answer(catalog(BAD, [dataset(BAD, 1, description=["长" * 30_000])])),
        "too_large",
        id="huge-dataset",
    ),
    pytest.param(
        answer(catalog(BAD, [dataset(BAD, n) for n in range(100, 160)])),
        "too_large",
        id="too-many-datasets",
    ),
    pytest.param(
        lambda _r: httpx.Response(200, content=b" " * (65 * 1024)), "too_large", id="huge-page"
    ),
    pytest.param(looping, "pagination_loop", id="pagination-loop"),
    pytest.param(for_ever, "too_many_pages", id="pages-for-ever"),
    pytest.param(
        answer({}, 302, Location="https://bad.test/dsp/catalog/request"),
        "redirected",
        id="redirect",
    ),
    pytest.param(answer({}, 403), "not_answered", id="forbidden"),
    pytest.param(
        answer(catalog(GOOD, [dataset(GOOD, 1)])), "foreign_datasets", id="another-provider"
    ),
    pytest.param(
        answer(catalog(BAD, [dataset(GOOD, 1)])), "foreign_datasets", id="another-assigner"
    ),
    pytest.param(
        answer({**catalog(BAD, []), "catalog": [catalog(GOOD, [dataset(GOOD, 1)])]}),
        "foreign_datasets",
        id="nested-catalogue",
    ),
    pytest.param(
        answer(
            catalog(BAD, [dataset(BAD, 1)]),
            Link='<https://evil.test/dsp/catalog/request?continuationToken=1>; rel="next"',
        ),
        "bad_link",
        id="next-page-elsewhere",
    ),
    pytest.param(
        answer(catalog(BAD, [dataset(BAD, 1), dataset(BAD, 1)])),
        "duplicate_dataset",
        id="a-dataset-twice",
    ),
]


@pytest.mark.parametrize(("page", "reason"), HOSTILE)
def test_a_hostile_catalogue_is_refused_and_the_rest_goes_on(
    crawler: Crawler, world: World, engine: Engine, page: Page, reason: str
) -> None:
    world.providers["good.test"] = paged(GOOD, good_pages(), "good.test")
    world.providers["bad.test"] = paged(BAD, [[dataset(BAD, 7)], [dataset(BAD, 8)]], "bad.test")
    asyncio.run(crawler.crawl_all())
    assert stored(engine, BAD) == ["urn:ds:7", "urn:ds:8"]

    good = paged(BAD, [[dataset(BAD, 9)]], "bad.test")
    calls = {"n": 0}

    def first_page_fine_then_hostile(request: httpx.Request) -> httpx.Response:
        # a first page that is fine, then the hostile one: nothing of the first may be kept
        calls["n"] += 1
        if "continuationToken" not in request.url.params and page not in (for_ever, looping):
            response = good(request)
            response.headers["Link"] = (
                '<https://bad.test/dsp/catalog/request?continuationToken=1>; rel="next"'
            )
            return response
        return page(request)

    world.providers["bad.test"] = first_page_fine_then_hostile
    reports = by_provider(asyncio.run(crawler.crawl_all()))
    assert reports[BAD].state is CrawlState.REFUSED
    refusal = reports[BAD].reason
    assert refusal is not None
    assert refusal.startswith(reason + ":"), refusal
    assert stored(engine, BAD) == ["urn:ds:7", "urn:ds:8"]  # the last good crawl, whole
    assert reports[GOOD].state is CrawlState.CURRENT
    assert len(stored(engine, GOOD)) == 5
    with Session(engine) as session:
        crawl = session.get(ProviderCrawl, BAD)
        assert crawl is not None
        assert crawl.state == "refused"
        assert crawl.reason == reports[BAD].reason


def test_a_participant_no_longer_active_loses_its_datasets(
    crawler: Crawler, world: World, engine: Engine
) -> None:
    world.providers["good.test"] = paged(GOOD, good_pages(), "good.test")
    asyncio.run(crawler.crawl_all())
    with Session(engine) as session:
        participant = session.get(RegisteredParticipant, GOOD)
        assert participant is not None
        participant.state = "suspended"
        session.add(participant)
        session.commit()
    reports = by_provider(asyncio.run(crawler.crawl_all()))
    assert reports[GOOD].state is None
    assert stored(engine, GOOD) == []


def test_a_provider_that_moved_is_crawled_at_its_new_address(
    crawler: Crawler, world: World, engine: Engine
) -> None:
    world.documents["good.test"] = {
        "@context": ["https://www.w3.org/ns/did/v1"],
        "id": GOOD,
        "service": [
            {"id": f"{GOOD}#dsp", "type": "DataService",
             "serviceEndpoint": "https://moved.test/dsp/catalog"},
        ],
    }  # fmt: skip
    world.providers["moved.test"] = paged(GOOD, good_pages(), "moved.test")
    reports = by_provider(asyncio.run(crawler.crawl_all()))
    assert reports[GOOD].state is CrawlState.CURRENT
    assert len(stored(engine, GOOD)) == 5
    with Session(engine) as session:
        registered = session.get(RegisteredParticipant, GOOD)
        assert registered is not None
        assert registered.dsp_address == "https://moved.test/dsp"
