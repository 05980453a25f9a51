"""The federated catalogue's tables and queries: every dataset the crawler took from a
provider's DSP catalogue (DCAT fields, offers, provider and its DSP address, domain, grade,
region with its parents, keywords, personal-information flag, version, registration code),
kept in step with the provider one transaction at a time, and searched with facets.

Full text goes through :mod:`broker.search.fulltext` (FTS5 on SQLite, a GIN-indexed tsvector
on PostgreSQL), written in the same transaction as the datasets.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy import Column, DateTime, Text, UniqueConstraint
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Field, Session, col, select

from broker.database import BrokerBase
from broker.search import fulltext
from broker.search.messages import CrawledDataset
from broker.search.tokens import index_tokens
from policy.operands import region_ancestors

MAX_FACET_VALUES: Final = 50


class CatalogueDataset(BrokerBase, table=True):
    __tablename__ = "catalogue_dataset"
    __table_args__ = (
        UniqueConstraint("provider", "dataset_id"),
        # covers what a search reads of each matched row (filters, facets, recency) by its
        # id, so that neither the page nor the facet counts read the rows' documents
        sa.Index("ix_catalogue_dataset_facets", *("id", "domain", "grade", "region",
                 "provider", "personal_information", "changed_at")),
    )  # fmt: skip

    id: int | None = Field(default=None, primary_key=True)
    provider: str = Field(max_length=2048)
    dataset_id: str = Field(max_length=300)
    """The dataset's ``@id`` at its provider: what the consumer asks the provider for."""
    dsp_address: str = Field(max_length=2048)
    titles: str = Field(sa_column=Column(Text, nullable=False))
    """JSON: the DCAT titles (Chinese, English) as given."""
    descriptions: str = Field(sa_column=Column(Text, nullable=False))
    keywords: str = Field(sa_column=Column(Text, nullable=False))
    domain: str | None = Field(default=None, max_length=100, index=True)
    grade: str | None = Field(default=None, max_length=20, index=True)
    region: str | None = Field(default=None, max_length=6, index=True)
    region_city: str | None = Field(default=None, max_length=6, index=True)
    region_province: str | None = Field(default=None, max_length=6, index=True)
    personal_information: bool | None = Field(default=None, index=True)
    version: str | None = Field(default=None, max_length=100)
    registration_code: str | None = Field(default=None, max_length=100)
    document: str = Field(sa_column=Column(Text, nullable=False))
    """JSON: the dataset as the provider gave it, offers included."""
    first_seen_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    changed_at: datetime = Field(
        sa_column=Column(DateTime(timezone=True), nullable=False, index=True)
    )
    """When it was first seen or last seen changed: what "recent" sorts by."""


class CrawlState(StrEnum):
    CURRENT = "current"
    """The last crawl succeeded: the stored datasets are the provider's."""
    STALE = "stale"
    """The provider did not answer: its datasets are those of its last good crawl."""
    REFUSED = "refused"
    """Its answer was refused (the reason says why): its datasets are those of its last good
    crawl."""


class ProviderCrawl(BrokerBase, table=True):
    """How the crawl of one provider stands."""

    __tablename__ = "provider_crawl"

    provider: str = Field(primary_key=True, max_length=2048)
    dsp_address: str = Field(max_length=2048)
    state: str = Field(max_length=20, index=True)
    reason: str | None = Field(default=None, max_length=1000)
    datasets: int = 0
    last_attempt_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    last_success_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True))
    )


class CataloguePage(BrokerBase, table=True):
    """One page of a provider's catalogue as the last good crawl read it: its URL, the
    validator the provider gave it (``ETag``), the datasets it listed and the page after it.
    A page the provider answers ``304`` for again is taken from here, not read or stored anew.
    Written with the provider's datasets, in their transaction; dropped with them."""

    __tablename__ = "catalogue_page"
    __table_args__ = (UniqueConstraint("provider", "position"),)

    id: int | None = Field(default=None, primary_key=True)
    provider: str = Field(max_length=2048, index=True)
    position: int
    url: str = Field(sa_column=Column(Text, nullable=False))
    etag: str = Field(max_length=200)
    dataset_ids: str = Field(sa_column=Column(Text, nullable=False))
    """JSON: the ids of the datasets the page listed, in its order."""
    next_url: str | None = Field(default=None, sa_column=Column(Text))


@dataclass(frozen=True)
class PageRecord:
    """A page of a crawl: what :class:`CataloguePage` keeps of it."""

    url: str
    etag: str
    dataset_ids: tuple[str, ...]
    next_url: str | None


def stored_pages(session: Session, provider: str) -> dict[str, PageRecord]:
    """The pages of ``provider``'s last good crawl, by URL."""
    rows = session.exec(
        select(CataloguePage)
        .where(CataloguePage.provider == provider)
        .order_by(col(CataloguePage.position))
    ).all()
    return {
        row.url: PageRecord(row.url, row.etag, tuple(json.loads(row.dataset_ids)), row.next_url)
        for row in rows
    }


def replace_pages(session: Session, provider: str, pages: Sequence[PageRecord]) -> None:
    """Keep ``pages`` (those with a validator) as ``provider``'s, in the caller's
    transaction."""
    session.execute(sa.delete(PAGES).where(PAGES.c.provider == provider))
    rows = [
        {
            "provider": provider, "position": position, "url": page.url, "etag": page.etag,
            "dataset_ids": json.dumps(list(page.dataset_ids), ensure_ascii=False),
            "next_url": page.next_url,
        }
        for position, page in enumerate(pages)
        if page.etag
    ]  # fmt: skip
    if rows:
        session.execute(sa.insert(PAGES), rows)


def _levels(region: str | None) -> tuple[str | None, str | None]:
    """(city, province) that ``region`` is in, itself included: 440106 -> (440100, 440000)."""
    if region is None:
        return None, None
    return (region[:4] + "00" if region[2:4] != "00" else None), region[:2] + "0000"


def _values(dataset: CrawledDataset, dsp_address: str) -> dict[str, Any]:
    """The columns of a dataset's row (but its id, provider and times)."""
    city, province = _levels(dataset.region)
    return {
        "dataset_id": dataset.dataset_id,
        "dsp_address": dsp_address,
        "titles": json.dumps(list(dataset.titles), ensure_ascii=False),
        "descriptions": json.dumps(list(dataset.descriptions), ensure_ascii=False),
        "keywords": json.dumps(list(dataset.keywords), ensure_ascii=False),
        "domain": dataset.domain,
        "grade": dataset.grade,
        "region": dataset.region,
        "region_city": city,
        "region_province": province,
        "personal_information": dataset.personal_information,
        "version": dataset.version,
        "registration_code": dataset.registration_code,
        "document": dataset.document,
    }


def _tokens(dataset: CrawledDataset) -> tuple[list[str], list[str]]:
    heading = [t for text in (*dataset.titles, *dataset.keywords) for t in index_tokens(text)]
    body = [t for text in dataset.descriptions for t in index_tokens(text)]
    return heading, body


@dataclass(frozen=True)
class Changes:
    added: int
    changed: int
    removed: int


TABLE: Final = CatalogueDataset.__table__  # type: ignore[attr-defined]
PAGES: Final = CataloguePage.__table__  # type: ignore[attr-defined]
CHUNK: Final = 500


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def replace_provider(
    session: Session,
    provider: str,
    dsp_address: str,
    datasets: Sequence[CrawledDataset],
    now: datetime,
    kept: Iterable[str] = (),
) -> Changes:
    """Make the stored datasets of ``provider`` exactly ``datasets`` and ``kept`` (distinct
    ids), in the caller's transaction: new ones added, changed ones rewritten, withdrawn ones
    removed (rows and index written in bulk, a few statements per 500 datasets). ``kept``:
    the ids of datasets on pages the provider said were unchanged (``304``), which stay as
    they are stored; only the documents of ``datasets`` are read to be compared."""
    stored: dict[str, tuple[int, str | None, str]] = {
        row.dataset_id: (row.id, None, row.dsp_address)
        for row in session.execute(
            sa.select(TABLE.c.id, TABLE.c.dataset_id, TABLE.c.dsp_address).where(
                TABLE.c.provider == provider
            )
        )
    }
    for identifier in kept:
        if stored.pop(identifier, None) is None:
            raise ValueError(f"dataset {identifier!r} of {provider} was kept but is not stored")
    read = [stored[d.dataset_id][0] for d in datasets if d.dataset_id in stored]
    for chunk in _chunks(read):
        for row in session.execute(
            sa.select(TABLE.c.id, TABLE.c.dataset_id, TABLE.c.document).where(TABLE.c.id.in_(chunk))
        ):
            stored[row.dataset_id] = (row.id, row.document, stored[row.dataset_id][2])
    added: list[tuple[dict[str, Any], CrawledDataset]] = []
    changed: list[tuple[int, dict[str, Any], CrawledDataset]] = []
    for dataset in datasets:
        before = stored.pop(dataset.dataset_id, None)
        if before is None:
            added.append((_values(dataset, dsp_address), dataset))
        elif before[1] != dataset.document or before[2] != dsp_address:
            changed.append((before[0], _values(dataset, dsp_address), dataset))
    for chunk in _chunks(added):
        rows = [
            {**values, "provider": provider, "first_seen_at": now, "changed_at": now}
            for values, _ in chunk
        ]
        inserted = session.execute(
            sa.insert(TABLE).returning(TABLE.c.dataset_id, TABLE.c.id), rows
        ).all()
        ids: dict[str, int] = {str(row[0]): int(row[1]) for row in inserted}
        fulltext.put_many(
            session, [(ids[dataset.dataset_id], *_tokens(dataset)) for _, dataset in chunk]
        )
    for chunk in _chunks(changed):
        session.execute(
            sa.update(TABLE)
            .where(TABLE.c.id == sa.bindparam("row_id"))
            .values({key: sa.bindparam(key) for key in chunk[0][1]} | {"changed_at": now}),
            [{"row_id": row_id, **values} for row_id, values, _ in chunk],
        )
        fulltext.put_many(session, [(row_id, *_tokens(dataset)) for row_id, _, dataset in chunk])
    _remove(session, [row_id for row_id, _, _ in stored.values()])
    return Changes(len(added), len(changed), len(stored))


def _remove(session: Session, ids: Sequence[int]) -> None:
    for chunk in _chunks(ids):
        fulltext.remove(session, chunk)
        session.execute(sa.delete(TABLE).where(TABLE.c.id.in_(chunk)))


def drop_provider(session: Session, provider: str) -> int:
    """Remove every dataset of ``provider`` (in the caller's transaction); how many."""
    ids = list(session.execute(sa.select(TABLE.c.id).where(TABLE.c.provider == provider)).scalars())
    _remove(session, ids)
    session.execute(sa.delete(PAGES).where(PAGES.c.provider == provider))
    return len(ids)


class Sort(StrEnum):
    RELEVANCE = "relevance"
    RECENCY = "recency"


class Facet(StrEnum):
    DOMAIN = "domain"
    GRADE = "grade"
    REGION = "region"
    PROVIDER = "provider"
    PERSONAL_INFORMATION = "personalInformation"


@dataclass(frozen=True)
class Search:
    tokens: tuple[str, ...] = ()
    domain: str | None = None
    grade: str | None = None
    region: str | None = None
    provider: str | None = None
    personal_information: bool | None = None
    sort: Sort = Sort.RELEVANCE
    offset: int = 0
    limit: int = 20


@dataclass(frozen=True)
class Hit:
    dataset: CatalogueDataset
    score: float | None


@dataclass(frozen=True)
class Found:
    total: int
    hits: list[Hit]
    facets: dict[Facet, list[tuple[Any, int]]]


def _filters(search: Search) -> dict[Facet, tuple[str, Any]]:
    """Each filter given: the column it tests and the value it wants (a region by its level:
    440000 is tested on the province column, 440100 on the city column)."""
    found: dict[Facet, tuple[str, Any]] = {}
    if search.domain is not None:
        found[Facet.DOMAIN] = ("domain", search.domain)
    if search.grade is not None:
        found[Facet.GRADE] = ("grade", search.grade)
    if search.region is not None:
        code = search.region
        level = (
            "region_province"
            if code[2:] == "0000"
            else "region_city"
            if code[4:] == "00"
            else "region"
        )
        found[Facet.REGION] = (level, code)
    if search.provider is not None:
        found[Facet.PROVIDER] = ("provider", search.provider)
    if search.personal_information is not None:
        found[Facet.PERSONAL_INFORMATION] = ("personal_information", search.personal_information)
    return found


def _conditions(search: Search) -> dict[Facet, ColumnElement[bool]]:
    return {facet: TABLE.c[name] == value for facet, (name, value) in _filters(search).items()}


FACET_COLUMNS: Final = {
    Facet.DOMAIN: "domain",
    Facet.GRADE: "grade",
    Facet.REGION: "region",
    Facet.PROVIDER: "provider",
    Facet.PERSONAL_INFORMATION: "personal_information",
}


def _rolled_up(counts: Iterable[tuple[Any, int]]) -> list[tuple[Any, int]]:
    """Region counts with their parents: a dataset in 440106 counts in 440100 and 440000."""
    total: Counter[str] = Counter()
    for code, count in counts:
        if code is not None:
            for level in region_ancestors(str(code)):
                total[level] += count
    return sorted(total.items())


def _load(session: Session, ids: Sequence[int]) -> dict[int, CatalogueDataset]:
    rows = session.exec(select(CatalogueDataset).where(col(CatalogueDataset.id).in_(ids))).all()
    return {row.id: row for row in rows if row.id is not None}


def _facet(pairs: list[tuple[Any, int]], facet: Facet) -> list[tuple[Any, int]]:
    if facet is Facet.REGION:
        return _rolled_up(pairs)
    ordered = sorted(pairs, key=lambda p: (-p[1], p[0] is None, str(p[0])))
    return ordered[:MAX_FACET_VALUES]


def search(session: Session, query: Search) -> Found:
    """Full text: the rows that hold every word are read once (id, relevance, recency and the
    facet columns), and filters, facets, order and page are taken from them; without words,
    each count is a query of its own over the indexed columns."""
    if query.tokens:
        return _search_words(session, query)
    conditions = _conditions(query)
    every = list(conditions.values())
    total = session.execute(sa.select(sa.func.count()).select_from(TABLE).where(*every))
    hits = search_hits(session, query)
    facets: dict[Facet, list[tuple[Any, int]]] = {}
    for facet, name in FACET_COLUMNS.items():
        others = [c for f, c in conditions.items() if f is not facet]
        column = TABLE.c[name]
        counted = session.execute(
            sa.select(column, sa.func.count()).where(*others).group_by(column)
        ).all()
        facets[facet] = _facet([(value, int(count)) for value, count in counted], facet)
    return Found(int(total.scalar_one()), hits, facets)


def search_hits(session: Session, query: Search) -> list[Hit]:
    """The page of :func:`search` alone, without its total and facets (for a caller that
    shows neither: the DSP catalogue's filter)."""
    if query.tokens:
        sqlite = session.get_bind().dialect.name == "sqlite"
        page = (_sqlite_page if sqlite else _postgres_page)(session, query)
        loaded = _load(session, [row_id for row_id, _ in page])
        return [Hit(loaded[row_id], score) for row_id, score in page]
    rows = session.execute(
        sa.select(TABLE.c.id)
        .where(*_conditions(query).values())
        .order_by(TABLE.c.changed_at.desc(), TABLE.c.id.desc())
        .offset(query.offset)
        .limit(query.limit)
    ).all()
    loaded = _load(session, [r[0] for r in rows])
    return [Hit(loaded[r[0]], None) for r in rows]


GROUPED: Final = ("domain", "grade", "region", "provider", "personal_information")
"""The columns the matched rows are grouped by: each facet's, and the region filter's levels
(the city and province columns follow from the region)."""
COVERING: Final = "ix_catalogue_dataset_facets"


def _passes(group: dict[str, Any], name: str, value: Any) -> bool:
    if name in ("region_city", "region_province"):
        city, province = _levels(group["region"])
        level = city if name == "region_city" else province
        return level is not None and level == value
    return bool(group[name] == value)


def _fts_match(query: Search) -> str:
    return " AND ".join(f'"{t}"' for t in query.tokens)


def _sqlite_words(
    session: Session, query: Search
) -> tuple[list[tuple[int, float]], list[tuple[Any, ...]]]:
    """SQLite: the page, and the matched rows grouped by the facet columns, each read from
    the covering index by its id."""
    grouped = ", ".join(f"d.{name}" for name in GROUPED)
    groups = session.execute(
        sa.text(
            f"SELECT {grouped}, count(*) FROM catalogue_dataset AS d INDEXED BY {COVERING} "  # noqa: S608 - fixed names
            "WHERE d.id IN (SELECT rowid FROM catalogue_fts WHERE catalogue_fts MATCH :fts_query) "
            f"GROUP BY {grouped}"
        ),
        {"fts_query": _fts_match(query)},
    ).all()
    return _sqlite_page(session, query), [tuple(r) for r in groups]


def _sqlite_page(session: Session, query: Search) -> list[tuple[int, float]]:
    """SQLite: the index drives (``CROSS JOIN``: FTS5 first) and each matched row is read
    from the covering index by its id, never from the table; bm25 is computed only for the
    rows that pass the filters. Column names are this module's own, values bound."""
    match = _fts_match(query)
    filters = _filters(query)
    names = {name for name, _ in filters.values()}
    # the region levels are not in the covering index: tested on the region's own prefix
    where, values = [], {"fts_query": match}
    for number, (name, value) in enumerate(filters.values()):
        if name == "region_province":
            where.append(f"substr(d.region, 1, 2) = :v{number}")
            value = value[:2]
        elif name == "region_city":
            where.append(f"substr(d.region, 1, 4) = :v{number} AND substr(d.region, 3, 2) != '00'")
            value = value[:4]
        else:
            where.append(f"d.{name} = :v{number}")
        values[f"v{number}"] = value
    assert names <= set(FILTER_NAMES)  # noqa: S101 - names come from _filters only
    score = f"-bm25(catalogue_fts, {fulltext.HEADING_WEIGHT}, 1.0)"
    recency = "d.changed_at DESC, d.id DESC"
    order = f"score DESC, {recency}" if query.sort is Sort.RELEVANCE else recency
    conditions = "".join(f" AND {c}" for c in where)
    page = session.execute(
        sa.text(
            f"SELECT d.id, {score} AS score FROM catalogue_fts CROSS JOIN catalogue_dataset AS d "  # noqa: S608 - fixed names, bound values
            f"INDEXED BY {COVERING} ON d.id = catalogue_fts.rowid "
            f"WHERE catalogue_fts MATCH :fts_query{conditions} ORDER BY {order} "
            "LIMIT :limit OFFSET :offset"
        ),
        {**values, "limit": query.limit, "offset": query.offset},
    ).all()
    return [(int(r[0]), float(r[1])) for r in page]


FILTER_NAMES: Final = (
    "domain", "grade", "region", "region_city", "region_province", "provider",
    "personal_information",
)  # fmt: skip


def _postgres_words(
    session: Session, query: Search
) -> tuple[list[tuple[int, float]], list[tuple[Any, ...]]]:
    """PostgreSQL: the page, and the facet counts grouped over a materialised list of the
    matched ids."""
    found = fulltext.matched(session, query.tokens, scored=False)
    source = found.join(TABLE, TABLE.c.id == found.c.id)
    columns = [TABLE.c[name] for name in GROUPED]
    groups = session.execute(
        sa.select(*columns, sa.func.count()).select_from(source).group_by(*columns)
    ).all()
    return _postgres_page(session, query), [tuple(r) for r in groups]


def _postgres_page(session: Session, query: Search) -> list[tuple[int, float]]:
    """PostgreSQL: the page joins the index and ranks only the rows that pass the filters."""
    fts, condition, rank = fulltext.postgres_ranked(query.tokens)
    # the rows that pass the filters first (materialised: the planner would otherwise rank
    # every match before filtering), then ranked, ordered and cut to the page
    filtered = (
        sa.select(TABLE.c.id, TABLE.c.changed_at)
        .select_from(fts.join(TABLE, fts.c.dataset == TABLE.c.id))
        .where(condition, *_conditions(query).values())
        .cte("filtered")
        .prefix_with("MATERIALIZED")
    )
    recency = (filtered.c.changed_at.desc(), filtered.c.id.desc())
    order = (rank.desc(), *recency) if query.sort is Sort.RELEVANCE else recency
    page = session.execute(
        sa.select(filtered.c.id, rank)
        .select_from(filtered.join(fts, fts.c.dataset == filtered.c.id))
        .order_by(*order)
        .offset(query.offset)
        .limit(query.limit)
    ).all()
    return [(int(r[0]), float(r[1])) for r in page]


def _search_words(session: Session, query: Search) -> Found:
    """Two reads of the rows that hold the words: the page, in order, filtered and limited
    by SQL; and their count grouped by the facet columns, from which the total and the
    facets are summed (a few hundred groups, never one Python step per matched row)."""
    sqlite = session.get_bind().dialect.name == "sqlite"
    page, grouped = (_sqlite_words if sqlite else _postgres_words)(session, query)
    loaded = _load(session, [row_id for row_id, _ in page])
    hits = [Hit(loaded[row_id], score) for row_id, score in page]
    groups = [(dict(zip(GROUPED, row[:-1], strict=True)), int(row[-1])) for row in grouped]
    filters = list(_filters(query).items())
    counts: dict[Facet, Counter[Any]] = {facet: Counter() for facet in FACET_COLUMNS}
    total = 0
    for group, count in groups:
        # a facet counts the rows that pass every filter but its own: a group that fails
        # none counts in every facet, one that fails one filter only in that filter's facet
        failed = [facet for facet, (name, value) in filters if not _passes(group, name, value)]
        if not failed:
            total += count
            for facet, name in FACET_COLUMNS.items():
                counts[facet][group[name]] += count
        elif len(failed) == 1:
            counts[failed[0]][group[FACET_COLUMNS[failed[0]]]] += count
    facets = {facet: _facet(list(counts[facet].items()), facet) for facet in FACET_COLUMNS}
    return Found(total, hits, facets)
