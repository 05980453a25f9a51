"""``GET /catalogue/v1/datasets`` on SQLite and PostgreSQL: hits that name provider, DSP address
and dataset id; facets; filters; and hostile input (full-text operators, quotes, unbalanced
brackets, SQL, 10 kB strings, unknown parameters) refused with a typed 400 or searched as
literal words, never a 500 and never an injected query."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from broker.app import create_app
from broker.search.messages import DSP_CONTEXT
from broker.settings import BrokerSettings
from tests.broker.search.corpus import AIR, BUREAU, FIRM_LIST, store
from tests.dsp_schemas import errors
from tests.openapi_fuzz import NO_NETWORK
from tests.participants import ADMIN_KEY, PASSPHRASE

OPERATOR = {"X-Api-Key": ADMIN_KEY}


@pytest.fixture
def client(database_url: str) -> Iterator[TestClient]:
    settings = BrokerSettings(
        authority_id="did:web:127.0.0.1%3A8180:authority",
        database_url=database_url,
        key_passphrase=SecretStr(PASSPHRASE),
        admin_api_key=SecretStr(ADMIN_KEY),
    )
    app = create_app(settings, transport=NO_NETWORK)
    with TestClient(app) as made:
        store(app.state.engine)
        yield made


def found(client: TestClient, **params: Any) -> dict[str, Any]:
    answer = client.get("/catalogue/v1/datasets", params=params, headers=OPERATOR)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_a_hit_names_the_provider_its_address_and_the_dataset(client: TestClient) -> None:
    body = found(client, q="企业 名单", domain="economic-development", grade="important")
    assert body["total"] == 1
    (hit,) = body["items"]
    assert hit["datasetId"] == FIRM_LIST.dataset_id
    assert hit["provider"] == BUREAU
    assert hit["dspAddress"] == "https://bureau.test/dsp"
    assert hit["title"] == ["广州市企业名单", "Guangzhou enterprise list"]
    assert hit["keyword"] == ["企业", "工商"]
    assert hit["dataGrade"] == "important"
    assert hit["region"] == "440106"
    assert hit["personalInformation"] is False
    assert hit["version"] == "2026.1"
    assert hit["registrationCode"] == "GZ-SJ-2026-0001"
    assert [o["@id"] for o in hit["offers"]] == [f"urn:offer:{FIRM_LIST.dataset_id}"]
    assert body["facets"]["region"] == [
        {"value": "440000", "count": 1, "parent": None},
        {"value": "440100", "count": 1, "parent": "440000"},
        {"value": "440106", "count": 1, "parent": "440100"},
    ]
    assert body["next"] is None


def test_pages_and_sorts(client: TestClient) -> None:
    first = found(client, sort="recency", limit=2)
    assert first["total"] == 5
    assert first["next"] == 2
    rest = found(client, sort="recency", offset=2, limit=3)
    assert rest["next"] is None
    seen = [h["datasetId"] for h in first["items"] + rest["items"]]
    assert len(set(seen)) == 5
    assert set(found(client)["facets"]) == {
        "domain", "grade", "region", "provider", "personalInformation",
    }  # fmt: skip


OPERATORS_ALONE = ['"', "'", "(((", "*", "^", "!!", "&|", ":*", "-", "''"]
"""Quotes, unbalanced brackets, FTS5's prefix and column operators, tsquery's."""

HOSTILE = [
    ('enterprise" OR "air', 0),  # an injected FTS5 OR
    ("enterprise OR air", 0),  # OR is a word
    ("enterprise AND NOT list", 0),
    ("enterprise) OR (air", 0),
    ("enterprise' | 'air", 0),  # a tsquery OR
    ("'; DROP TABLE catalogue_dataset; --", 0),
    ("enterprise*", 1),  # not a prefix operator: the word enterprise
    ('企业" 名单', 1),  # a stray quote
    ("heading:企业", 0),  # FTS5's column filter: the word heading
    ("NEAR(企业", 0),
    ("企业 名单 " * 20, 1),
    ("enterprise:*", 1),
]


def test_a_query_of_operators_alone_is_refused(client: TestClient) -> None:
    for query in OPERATORS_ALONE:
        answer = client.get("/catalogue/v1/datasets", params={"q": query}, headers=OPERATOR)
        assert answer.status_code == 400, query
        assert answer.json() == {
            "type": "BadRequest",
            "reason": "no_search_terms",
            "message": "the query holds no word to search for",
        }


def test_operators_inside_a_query_are_searched_as_words(client: TestClient) -> None:
    for query, total in HOSTILE:
        assert found(client, q=query)["total"] == total, query
    assert found(client)["total"] == 5  # and nothing was dropped


BAD_PARAMETERS = [
    ({"q": "企" * 3_414}, "query_too_long"),  # 10 kB
    ({"q": "(" * 10_240}, "query_too_long"),
    ({"colour": "red"}, "unknown_parameter"),  # an unknown facet
    ({"region": "4401"}, "bad_region"),
    ({"region": "990000"}, "bad_region"),  # no such province
    ({"domain": "Economic Development"}, "bad_domain"),
    ({"domain": "x" * 10_240}, "bad_domain"),
]
BAD_VALUES = [
    {"grade": "secret"},
    {"sort": "price"},
    {"limit": "1000"},
    {"offset": "-1"},
    {"offset": "99999999999999999999999"},
    {"personalInformation": "maybe"},
    {"provider": "did:" + "x" * 10_240},
]


def test_bad_parameters_are_refused(client: TestClient) -> None:
    for params, reason in BAD_PARAMETERS:
        answer = client.get("/catalogue/v1/datasets", params=params, headers=OPERATOR)
        assert answer.status_code == 400, answer.text
        assert answer.json()["reason"] == reason


def test_bad_values_are_typed_refusals(client: TestClient) -> None:
    for params in BAD_VALUES:
        answer = client.get("/catalogue/v1/datasets", params=params, headers=OPERATOR)
        assert answer.status_code == 422, params
        assert answer.json()["type"] == "BadRequest"


def test_search_needs_a_member_or_the_operator(client: TestClient) -> None:
    assert client.get("/catalogue/v1/datasets").status_code == 401
    wrong = client.get("/catalogue/v1/datasets", headers={"X-Api-Key": "x" * 20})
    assert wrong.status_code == 401


DSP_REQUEST = {"@context": [DSP_CONTEXT], "@type": "CatalogRequestMessage"}


def test_the_same_as_a_dsp_catalogue_of_catalogues(client: TestClient) -> None:
    answer = client.post("/dsp/catalog/request", json=DSP_REQUEST, headers=OPERATOR)
    assert answer.status_code == 200, answer.text
    assert errors("catalog/catalog-schema.json", answer.json()) == []
    catalogues = {c["@id"]: c for c in answer.json()["catalog"]}
    bureau = catalogues[f"{BUREAU}#catalog"]
    assert bureau["service"][0]["endpointURL"] == "https://bureau.test/dsp"
    assert {d["@id"] for d in bureau["dataset"]} == {FIRM_LIST.dataset_id, AIR.dataset_id}
    assert "Link" not in answer.headers
    for body, token in (
        ({"@type": "Something"}, None),
        ({**DSP_REQUEST, "filter": [{"x": 1}]}, None),
        ({"@type": "CatalogRequestMessage", "@context": "x"}, None),
        (DSP_REQUEST, "x1"),
    ):
        params = {} if token is None else {"continuationToken": token}
        refused = client.post("/dsp/catalog/request", json=body, params=params, headers=OPERATOR)
        assert refused.status_code == 400, refused.text
    assert client.post("/dsp/catalog/request", json=DSP_REQUEST).status_code == 401


@pytest.mark.parametrize(
    "terms",
    [
        {"q": "企业 名单"},
        {"q": "air"},
        {"domain": "economic-development", "grade": "important"},
        {"region": "440100", "sort": "recency"},
        {"personalInformation": False, "provider": BUREAU},
    ],
)
def test_a_dsp_filter_gives_the_searchs_results(client: TestClient, terms: dict[str, Any]) -> None:
    """A DSP client that filters the catalogue (the search's parameters as the request's one
    filter object) gets the same datasets as the search API, in its order, schema-valid."""
    params = {k: str(v).lower() if isinstance(v, bool) else v for k, v in terms.items()}
    hits = [h["datasetId"] for h in found(client, limit=100, **params)["items"]]
    assert hits
    answer = client.post(
        "/dsp/catalog/request", json={**DSP_REQUEST, "filter": [terms]}, headers=OPERATOR
    )
    assert answer.status_code == 200, answer.text
    assert errors("catalog/catalog-schema.json", answer.json()) == []
    given = [d["@id"] for c in answer.json()["catalog"] for d in c["dataset"]]
    assert sorted(given) == sorted(hits)
    for catalogue in answer.json()["catalog"]:  # each provider's in the search's own order
        theirs = [d["@id"] for d in catalogue["dataset"]]
        assert theirs == [h for h in hits if h in theirs]


@pytest.mark.parametrize(
    "filter_",
    [
        [{"x": 1}],
        [{"q": 5}],
        [{"grade": "secret-ish"}],
        [{"sort": "random"}],
        [{"personalInformation": "yes"}],
        [{"q": "a"}, {"q": "b"}],
        {"q": "not a list"},
        [{"region": "999999"}],
        [{"q": "x" * 10_000}],
    ],
)
def test_a_dsp_filter_it_cannot_use_is_a_typed_400(client: TestClient, filter_: object) -> None:
    refused = client.post(
        "/dsp/catalog/request", json={**DSP_REQUEST, "filter": filter_}, headers=OPERATOR
    )
    assert refused.status_code == 400, refused.text
    assert refused.json()["reason"] in {
        "unsupported_filter", "bad_region", "query_too_long", "no_search_terms",
    }  # fmt: skip


def _follow(client: TestClient, body: dict[str, Any]) -> list[list[str]]:
    """Every page of the broker's DSP catalogue, by its ``Link`` next: the ids on each."""
    pages: list[list[str]] = []
    url: str | None = "/dsp/catalog/request"
    while url is not None:
        answer = client.post(url, json=body, headers=OPERATOR)
        assert answer.status_code == 200, answer.text
        assert errors("catalog/catalog-schema.json", answer.json()) == []
        pages.append([d["@id"] for c in answer.json()["catalog"] for d in c["dataset"]])
        links = {
            part.split(";")[1].strip(): part.split(";")[0].strip().strip("<>")
            for part in answer.headers.get("Link", "").split(",")
            if part.strip()
        }
        if len(pages) > 1:  # every later page links back to the one before
            assert links['rel="previous"'].endswith(f"continuationToken={100 * (len(pages) - 2)}")
        url = links.get('rel="next"')
        if url is not None:
            assert url.startswith(("https://", "http://"))
            url = "/" + url.split("://", 1)[1].split("/", 1)[1]
    return pages


def test_the_dsp_catalogue_pages_past_100_by_its_link_header(client: TestClient) -> None:
    """250 datasets more (two providers): pages of 100, 100 and the rest, each schema-valid,
    each dataset on exactly one page; filtered, the search's hits paged the same way."""
    from datetime import timedelta

    from sqlmodel import Session

    from broker.search.store import replace_provider
    from tests.broker.search.corpus import T0, dataset

    many = {
        provider: [
            dataset(
                provider,
                f"urn:kexin:asset:series-{provider[8]}-{n:03d}",
                [f"统计序列 {n}", f"Statistical series {n}"],
                domain="economic-development",
                grade="general",
                region="440106",
            )
            for n in range(125)
        ]
        for provider in ("did:web:a-stats.test", "did:web:b-stats.test")
    }
    engine = client.app.state.engine  # type: ignore[attr-defined]
    with Session(engine) as session:
        for provider, datasets in many.items():
            replace_provider(
                session, provider, f"https://{provider[8:]}/dsp", datasets, T0 + timedelta(days=1)
            )
        session.commit()
    everything = {d.dataset_id for datasets in many.values() for d in datasets} | {
        FIRM_LIST.dataset_id, AIR.dataset_id,
    }  # fmt: skip
    total = 5 + 250
    pages = _follow(client, DSP_REQUEST)
    assert [len(page) for page in pages] == [100, 100, total - 200]
    seen = [dataset_id for page in pages for dataset_id in page]
    assert len(seen) == len(set(seen)) == total
    assert everything <= set(seen)

    filtered = {**DSP_REQUEST, "filter": [{"q": "统计 序列", "sort": "recency"}]}
    hits = [d for page in _follow(client, filtered) for d in page]
    assert sorted(hits) == sorted(d.dataset_id for ds in many.values() for d in ds)
    assert [len(p) for p in _follow(client, filtered)] == [100, 100, 50]
