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
    __table_args__ = (UniqueConstraint("provider", "dataset_id"),)

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


def _canonical(document: dict[str, Any]) -> str:
    return json.dumps(document, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _levels(region: str | None) -> tuple[str | None, str | None]:
    """(city, province) that ``region`` is in, itself included: 440106 -> (440100, 440000)."""
    if region is None:
        return None, None
    return (region[:4] + "00" if region[2:4] != "00" else None), region[:2] + "0000"


def _fill(row: CatalogueDataset, dataset: CrawledDataset, dsp_address: str) -> None:
    row.dsp_address = dsp_address
    row.titles = json.dumps(list(dataset.titles), ensure_ascii=False)
    row.descriptions = json.dumps(list(dataset.descriptions), ensure_ascii=False)
    row.keywords = json.dumps(list(dataset.keywords), ensure_ascii=False)
    row.domain, row.grade, row.region = dataset.domain, dataset.grade, dataset.region
    row.region_city, row.region_province = _levels(dataset.region)
    row.personal_information = dataset.personal_information
    row.version, row.registration_code = dataset.version, dataset.registration_code
    row.document = _canonical(dataset.document)


def _index(session: Session, row_id: int, dataset: CrawledDataset) -> None:
    heading = [t for text in (*dataset.titles, *dataset.keywords) for t in index_tokens(text)]
    body = [t for text in dataset.descriptions for t in index_tokens(text)]
    fulltext.put(session, row_id, heading, body)


@dataclass(frozen=True)
class Changes:
    added: int
    changed: int
    removed: int


def replace_provider(
    session: Session,
    provider: str,
    dsp_address: str,
    datasets: Sequence[CrawledDataset],
    now: datetime,
) -> Changes:
    """Make the stored datasets of ``provider`` exactly ``datasets`` (distinct ids), in the
    caller's transaction: new ones added, changed ones rewritten, withdrawn ones removed."""
    stored = {
        row.dataset_id: row
        for row in session.exec(
            select(CatalogueDataset).where(CatalogueDataset.provider == provider)
        ).all()
    }
    added = changed = 0
    for dataset in datasets:
        row = stored.pop(dataset.dataset_id, None)
        if row is None:
            row = CatalogueDataset(
                provider=provider, dataset_id=dataset.dataset_id, dsp_address=dsp_address,
                titles="[]", descriptions="[]", keywords="[]", document="{}",
                first_seen_at=now, changed_at=now,
            )  # fmt: skip
            added += 1
        elif row.document == _canonical(dataset.document) and row.dsp_address == dsp_address:
            continue
        else:
            row.changed_at = now
            changed += 1
        _fill(row, dataset, dsp_address)
        session.add(row)
        session.flush()
        assert row.id is not None  # noqa: S101 - flushed
        _index(session, row.id, dataset)
    remove_datasets(session, list(stored.values()))
    return Changes(added, changed, len(stored))


def remove_datasets(session: Session, rows: Sequence[CatalogueDataset]) -> None:
    fulltext.remove(session, [row.id for row in rows if row.id is not None])
    for row in rows:
        session.delete(row)
    session.flush()


def drop_provider(session: Session, provider: str) -> int:
    """Remove every dataset of ``provider`` (in the caller's transaction); how many."""
    rows = list(
        session.exec(select(CatalogueDataset).where(CatalogueDataset.provider == provider)).all()
    )
    remove_datasets(session, rows)
    return len(rows)


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


def _conditions(search: Search) -> dict[Facet, ColumnElement[bool]]:
    found: dict[Facet, ColumnElement[bool]] = {}
    if search.domain is not None:
        found[Facet.DOMAIN] = col(CatalogueDataset.domain) == search.domain
    if search.grade is not None:
        found[Facet.GRADE] = col(CatalogueDataset.grade) == search.grade
    if search.region is not None:
        code = search.region
        column = (
            CatalogueDataset.region_province
            if code[2:] == "0000"
            else CatalogueDataset.region_city
            if code[4:] == "00"
            else CatalogueDataset.region
        )
        found[Facet.REGION] = col(column) == code
    if search.provider is not None:
        found[Facet.PROVIDER] = col(CatalogueDataset.provider) == search.provider
    if search.personal_information is not None:
        found[Facet.PERSONAL_INFORMATION] = (
            col(CatalogueDataset.personal_information) == search.personal_information
        )
    return found


FACET_COLUMNS: Final = {
    Facet.DOMAIN: CatalogueDataset.domain,
    Facet.GRADE: CatalogueDataset.grade,
    Facet.REGION: CatalogueDataset.region,
    Facet.PROVIDER: CatalogueDataset.provider,
    Facet.PERSONAL_INFORMATION: CatalogueDataset.personal_information,
}


def _rolled_up(counts: Iterable[tuple[Any, int]]) -> list[tuple[Any, int]]:
    """Region counts with their parents: a dataset in 440106 counts in 440100 and 440000."""
    total: Counter[str] = Counter()
    for code, count in counts:
        if code is not None:
            for level in region_ancestors(str(code)):
                total[level] += count
    return sorted(total.items())


def search(session: Session, query: Search) -> Found:
    dataset_id: ColumnElement[int | None] = col(CatalogueDataset.id)  # type: ignore[assignment]
    source: Any = CatalogueDataset.__table__  # type: ignore[attr-defined]
    score: ColumnElement[Any] | None = None
    text_condition: list[ColumnElement[bool]] = []
    if query.tokens:
        found = fulltext.match(session, dataset_id, query.tokens)
        source = source.join(found.table, found.onclause)
        text_condition.append(found.condition)
        score = found.score
    conditions = _conditions(query)
    every = [*text_condition, *conditions.values()]

    total = session.execute(sa.select(sa.func.count()).select_from(source).where(*every))
    recency = (col(CatalogueDataset.changed_at).desc(), dataset_id.desc())
    order = (
        (score.desc(), *recency) if score is not None and query.sort is Sort.RELEVANCE else recency
    )
    columns: list[Any] = [dataset_id, score if score is not None else sa.null()]
    rows = session.execute(
        sa.select(*columns)
        .select_from(source)
        .where(*every)
        .order_by(*order)
        .offset(query.offset)
        .limit(query.limit)
    ).all()
    by_id = {
        row.id: row
        for row in session.exec(
            select(CatalogueDataset).where(col(CatalogueDataset.id).in_([r[0] for r in rows]))
        ).all()
    }
    hits = [Hit(by_id[r[0]], None if r[1] is None else float(r[1])) for r in rows]

    facets: dict[Facet, list[tuple[Any, int]]] = {}
    for facet, column in FACET_COLUMNS.items():
        others = [c for f, c in conditions.items() if f is not facet]
        counted = session.execute(
            sa.select(col(column), sa.func.count())
            .select_from(source)
            .where(*text_condition, *others)
            .group_by(col(column))
            .order_by(sa.func.count().desc(), col(column))
            .limit(None if facet is Facet.REGION else MAX_FACET_VALUES)
        ).all()
        pairs = [(value, int(count)) for value, count in counted]
        facets[facet] = _rolled_up(pairs) if facet is Facet.REGION else pairs
    return Found(int(total.scalar_one()), hits, facets)
