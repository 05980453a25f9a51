"""The catalogue store and its search on real SQLite (FTS5) and real PostgreSQL (tsvector, GIN):
Chinese and English words, facets with counts (regions with their parents), filters, both
sorts, pages; a provider's datasets replaced in one go (withdrawn ones gone from the index,
changed ones indexed anew)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from broker.database import migrations
from broker.search.store import Facet, Search, Sort, drop_provider, replace_provider, search
from broker.search.tokens import query_tokens
from storage.migrate import upgrade
from tests.broker.search.corpus import (
    AIR,
    BUREAU,
    FIRM_LIST,
    FLOW,
    HOSPITAL,
    PERMITS,
    T0,
    TRAFFIC,
    VISITS,
    dataset,
    store,
)


@pytest.fixture
def catalogue(engine: Engine) -> Engine:
    upgrade(engine, migrations())
    store(engine)
    return engine


def ids(engine: Engine, query: str = "", **filters: object) -> list[str]:
    with Session(engine) as session:
        found = search(session, Search(tokens=tuple(query_tokens(query)), **filters))  # type: ignore[arg-type]
    return [hit.dataset.dataset_id for hit in found.hits]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param("企业 名单", [FIRM_LIST], id="two-chinese-words"),
        pytest.param("企业名单", [FIRM_LIST], id="a-compound"),
        pytest.param("名单", [FIRM_LIST], id="part-of-a-compound"),
        pytest.param("市场主体", [FIRM_LIST], id="in-the-description"),
        pytest.param("enterprise", [FIRM_LIST], id="english"),
        pytest.param("ENTERPRISE List", [FIRM_LIST], id="any-case"),
        pytest.param("Air quality", [AIR], id="english-words"),
        pytest.param("交通", [FLOW, AIR], id="title-before-description"),
        pytest.param("企业 交通", [], id="every-word-must-be-there"),
        pytest.param("个人信息", [VISITS], id="chinese-in-description"),
        pytest.param("GZ", [], id="not-indexed-fields-are-not-searched"),
    ],
)
def test_words_in_chinese_and_english(
    catalogue: Engine, query: str, expected: list[object]
) -> None:
    assert ids(catalogue, query) == [d.dataset_id for d in expected]  # type: ignore[attr-defined]


def test_facets_count_every_match_and_regions_count_in_their_parents(catalogue: Engine) -> None:
    with Session(catalogue) as session:
        found = search(session, Search())
    assert found.total == 5
    assert dict(found.facets[Facet.DOMAIN]) == {
        "economic-development": 1, "ecological-environment": 1, "healthcare": 1,
        "traffic-management": 2,
    }  # fmt: skip
    assert dict(found.facets[Facet.GRADE]) == {"general": 3, "important": 1, "core": 1}
    assert dict(found.facets[Facet.REGION]) == {
        "440000": 5, "440100": 3, "440104": 1, "440106": 1, "440300": 1,
    }  # fmt: skip
    assert dict(found.facets[Facet.PROVIDER]) == {BUREAU: 2, HOSPITAL: 1, TRAFFIC: 2}
    assert dict(found.facets[Facet.PERSONAL_INFORMATION]) == {False: 4, True: 1}


def test_a_facet_counts_without_its_own_filter(catalogue: Engine) -> None:
    with Session(catalogue) as session:
        found = search(session, Search(grade="general", region="440100"))
    assert found.total == 2  # the air and the traffic flow
    assert dict(found.facets[Facet.GRADE]) == {"general": 2, "important": 1}
    # the general datasets: the air (440100), the traffic flow (440104), the permits (440000)
    assert dict(found.facets[Facet.REGION]) == {"440000": 3, "440100": 2, "440104": 1}


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        pytest.param({"region": "440106"}, [FIRM_LIST], id="district"),
        pytest.param({"region": "440100"}, [FLOW, AIR, FIRM_LIST], id="city-holds-districts"),
        pytest.param({"region": "440000"}, [FLOW, PERMITS, VISITS, AIR, FIRM_LIST], id="province"),
        pytest.param({"grade": "core"}, [VISITS], id="grade"),
        pytest.param({"domain": "traffic-management"}, [FLOW, PERMITS], id="domain"),
        pytest.param({"provider": HOSPITAL}, [VISITS], id="provider"),
        pytest.param({"personal_information": True}, [VISITS], id="personal"),
        pytest.param({"domain": "no-such-domain"}, [], id="unknown-value"),
    ],
)
def test_filters(catalogue: Engine, filters: dict[str, object], expected: list[object]) -> None:
    found = ids(catalogue, "", sort=Sort.RECENCY, **filters)
    assert sorted(found) == sorted(d.dataset_id for d in expected)  # type: ignore[attr-defined]


def test_recency_and_pages(catalogue: Engine) -> None:
    newest_first = ids(catalogue, "", sort=Sort.RECENCY)
    assert newest_first[2:] == [VISITS.dataset_id, AIR.dataset_id, FIRM_LIST.dataset_id] or (
        newest_first[2:] == [VISITS.dataset_id, FIRM_LIST.dataset_id, AIR.dataset_id]
    )
    assert set(newest_first[:2]) == {FLOW.dataset_id, PERMITS.dataset_id}
    pages = [ids(catalogue, "", sort=Sort.RECENCY, offset=n, limit=2) for n in (0, 2, 4)]
    assert [i for page in pages for i in page] == newest_first


def test_a_provider_is_replaced_in_one_go(catalogue: Engine) -> None:
    renamed = dataset(
        BUREAU, AIR.dataset_id, ["空气污染指数", "Air pollution index"],
        domain="ecological-environment", grade="general", region="440100",
    )  # fmt: skip
    with Session(catalogue) as session:
        changes = replace_provider(
            session, BUREAU, "https://bureau.test/dsp", [renamed], T0 + timedelta(days=1)
        )
        session.commit()
    assert (changes.added, changes.changed, changes.removed) == (0, 1, 1)
    assert ids(catalogue, "企业 名单") == []  # withdrawn
    assert ids(catalogue, "质量") == []  # the old title is no longer indexed
    assert ids(catalogue, "污染") == [AIR.dataset_id]
    assert ids(catalogue, "", sort=Sort.RECENCY)[0] == AIR.dataset_id  # changed: recent
    with Session(catalogue) as session:
        unchanged = replace_provider(
            session, BUREAU, "https://bureau.test/dsp", [renamed], T0 + timedelta(days=2)
        )
        assert (unchanged.added, unchanged.changed, unchanged.removed) == (0, 0, 0)
        assert drop_provider(session, BUREAU) == 1
        session.commit()
        indexed = session.execute(text("SELECT count(*) FROM catalogue_fts")).scalar_one()
    assert ids(catalogue, "污染") == []
    assert indexed == 3  # the hospital's and the traffic police's


def test_relevance_ranks_titles_above_descriptions_on_both_back_ends(catalogue: Engine) -> None:
    with Session(catalogue) as session:
        found = search(session, Search(tokens=("交通",)))
    scores = [hit.score for hit in found.hits]
    assert len(scores) == 2
    assert None not in scores
    assert scores[0] > scores[1]  # type: ignore[operator]


FILTER_SETS = [
    {"region": "440106"}, {"region": "440100"}, {"region": "440000"}, {"region": "440300"},
    {"grade": "general"}, {"domain": "traffic-management"}, {"provider": HOSPITAL},
    {"personal_information": True}, {"domain": "traffic-management", "region": "440100"},
    {"grade": "general", "region": "440000"},
]  # fmt: skip


@pytest.mark.parametrize("words", ["交通", "企业", "traffic"])
@pytest.mark.parametrize("filters", FILTER_SETS, ids=lambda f: ",".join(map(str, f.values())))
def test_words_and_filters_find_what_each_finds_alone(
    catalogue: Engine, words: str, filters: dict[str, object]
) -> None:
    """The word search (the index first, its own SQL per back end) filters, counts and
    facets as the search without words does over the same rows."""
    matching = set(ids(catalogue, words, limit=100))
    with Session(catalogue) as session:
        both = search(session, Search(tokens=tuple(query_tokens(words)), limit=100, **filters))  # type: ignore[arg-type]
        alone = search(session, Search(limit=100, **filters))  # type: ignore[arg-type]
    found = {hit.dataset.dataset_id for hit in both.hits}
    assert found == {hit.dataset.dataset_id for hit in alone.hits} & matching
    assert both.total == len(found)
    for facet, counted in both.facets.items():
        assert all(count > 0 for _, count in counted), facet
