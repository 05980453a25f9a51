"""Broker benchmark (issue 16): the federated catalogue over 10 connectors of 10,000 assets each.

- cold crawl: the broker crawls the 10 connectors' DSP catalogues (every page, DCP-authenticated,
  each connector its own process as in production, 1,000 datasets a page) into an empty
  catalogue: target <= 60 s for the 100,000 datasets.
- refresh: a crawl round with nothing changed (every page answered 304 to its ETag); then 1 %
  of each connector's assets changed (100 titles each, written straight into its database),
  once spread over every page (every hundredth asset) and once on one page (the last 1 % by
  id), each followed by a crawl round that finds them: target <= 5 s.
- search: the broker's ``GET /catalogue/v1/datasets`` (operator key, over loopback HTTP, the
  broker in this process) with Chinese and English queries and two facet filters (domain and
  grade), one at a time: p50 <= 20 ms and p95 <= 50 ms, on SQLite (the crawled catalogue) and
  on PostgreSQL (the same datasets, stored through the same store code from the documents the
  SQLite catalogue kept).

Two cores for everything (connectors, broker, the client). Run: ``make bench`` (or
``.venv/bin/python -m bench.broker_bench``; ``--no-postgres`` skips PostgreSQL;
``--search-only`` stores the catalogue without crawling and measures the searches alone).
Exits 1 if a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from pydantic import SecretStr
from sqlmodel import Session, select

from bench.connector_bench import KEY, PASSPHRASE, connector, cpu_ms, did, serve_process
from broker.app import create_app as create_broker
from broker.search.messages import parse_catalog
from broker.search.store import CatalogueDataset, replace_provider
from broker.settings import BrokerSettings, OnboardingGrant
from connector.catalog.domains import Domains, shipped
from connector.catalog.messages import data_service
from connector.catalog.messages import dataset as dataset_document
from connector.catalog.store import Asset, ContractDefinition, PolicyDefinition
from connector.dcp.client import request_credentials
from connector.participant import standalone
from connector.settings import ConnectorSettings
from dataspace.demo import BUREAU_ORG, LOOPBACK
from dataspace.servers import bind, serve_in_thread
from identity.credentials import CredentialType
from storage.engine import create_engine

PROVIDERS = 10
ASSETS = 10_000
COLD_TARGET_S = 60.0
REFRESH_TARGET_S = 5.0
P50_TARGET_MS = 20.0
P95_TARGET_MS = 50.0
SEARCHES = 200
BROKER_ORG = {
    "name": "广州数据交易所",
    "creditCode": "91440101MA59XKQ72B",
    "region": "440100",
    "dataGrade": "general",
}
MEMBERS = {
    "@type": "Set",
    "permission": [
        {
            "action": "use",
            "constraint": [
                {"leftOperand": "kexin:membership", "operator": "eq", "rightOperand": "active"}
            ],
        }
    ],
}
ZH = ("企业", "名单", "空气", "质量", "监测", "交通", "流量", "医疗", "机构", "人口", "统计",
      "学校", "招生", "能源", "消耗", "农业", "种植", "旅游", "景区", "应急", "物资", "排放",
      "公交", "线路", "社区", "网格", "供水", "用电", "园区", "产业")  # fmt: skip
EN = ("firm", "list", "air", "quality", "monitoring", "traffic", "flow", "hospital", "agency",
      "population", "statistics", "school", "enrolment", "energy", "consumption", "farming",
      "tourism", "scenic", "emergency", "supplies", "emission", "bus", "route", "community",
      "grid", "water", "power", "park", "industry", "registry")  # fmt: skip
QUERIES = (
    "企业 名单", "空气 质量", "交通 流量", "医疗 机构", "能源", "社区 网格",
    "firm list", "air quality", "traffic", "hospital agency", "energy", "bus route",
)  # fmt: skip
GRADES = ("general", "important")
REGIONS = ("440103", "440104", "440105", "440106", "440111", "440112", "440300", "440600")


def asset_rows(number: int, now: datetime, assets: int) -> list[dict[str, Any]]:
    """The assets of connector ``number``: over the shipped domains, grades and regions."""
    domains = [domain.id for domain in shipped()]
    chance = random.Random(number)  # noqa: S311 - test data
    rows = []
    for index in range(assets):
        zh = chance.sample(range(len(ZH)), 3)
        rows.append({
            "id": f"urn:kexin:asset:{number:02d}-{index:05d}",
            "title_zh": "".join(ZH[i] for i in zh) + "数据",
            "title_en": " ".join(EN[i] for i in zh) + " data",
            "description_zh": f"{ZH[zh[0]]}{ZH[chance.randrange(len(ZH))]}的{index}号数据集",
            "description_en": f"dataset {index} on {EN[chance.randrange(len(EN))]}",
            "keywords": json.dumps([ZH[zh[1]], EN[zh[2]]], ensure_ascii=False),
            "domain": domains[index % len(domains)],
            "data_grade": GRADES[index % 2],
            "personal_information": index % 7 == 0,
            "region": REGIONS[index % len(REGIONS)],
            "version": "1.0",
            "data_address": '{"type": "file", "path": "/srv/x.csv"}',
            "created_at": now,
        })  # fmt: skip
    return rows


def seed(settings: ConnectorSettings, number: int, now: datetime, assets: int) -> None:
    """10,000 assets, a members-only access policy, one contract definition for all:
    straight into the connector's database, in bulk."""
    rows = asset_rows(number, now, assets)
    engine = create_engine(settings.database_url)
    with Session(engine) as session:
        session.add(PolicyDefinition(id="members", policy=json.dumps(MEMBERS), created_at=now))
        session.commit()
        session.add(
            ContractDefinition(
                id="all", access_policy_id="members", contract_policy_id="members",
                asset_selector="{}", created_at=now,
            )
        )  # fmt: skip
        session.execute(sa.insert(Asset.__table__), rows)  # type: ignore[attr-defined]
        session.commit()
    engine.dispose()


def change(settings: ConnectorSettings, number: int, assets: int, *, spread: bool) -> None:
    """1 % of the assets get a new title: every hundredth (``spread``: a change on every
    page), or the last 1 % by id (on one page)."""
    engine = create_engine(settings.database_url)
    table = Asset.__table__  # type: ignore[attr-defined]
    indexes = range(0, assets, 100) if spread else range(assets - assets // 100, assets)
    with engine.begin() as connection:
        for index in indexes:
            connection.execute(
                sa.update(table)
                .where(table.c.id == f"urn:kexin:asset:{number:02d}-{index:05d}")
                .values(
                    title_en=f"{'changed' if spread else 'renamed'} registry data {index}",
                    title_zh=f"{'更新' if spread else '改名'}的名单 {index}",
                )
            )
    engine.dispose()


def broker_settings(
    sock: Any, database_url: str, allow: dict[str, Any], **more: Any
) -> BrokerSettings:
    return BrokerSettings(
        authority_id=did(sock, "authority"),
        public_url=f"http://127.0.0.1:{sock.getsockname()[1]}",
        database_url=database_url,
        key_passphrase=PASSPHRASE,
        admin_api_key=SecretStr(KEY),
        did_web_allow_http=True,
        outbound_allowed_networks=LOOPBACK,
        onboarding_allow=allow,
        crawl_interval_s=0,
        **more,
    )


def crawl(broker_url: str, pids: dict[str, int]) -> tuple[float, list[dict[str, Any]], str]:
    """One crawl round: its time, the providers' reports, and the CPU it took (the broker,
    which runs in this process, and the connectors together)."""
    before, own = cpu_ms(pids), time.process_time()
    started = time.perf_counter()
    answer = httpx.post(
        f"{broker_url}/admin/catalogue/crawl", headers={"X-Api-Key": KEY}, timeout=600
    )
    elapsed = time.perf_counter() - started
    answer.raise_for_status()
    connectors = sum(cpu_ms(pids).values()) - sum(before.values())
    broker = (time.process_time() - own) * 1e3
    used = f"CPU: broker {broker / 1e3:.1f} s, the connectors {connectors / 1e3:.1f} s"
    return elapsed, answer.json()["providers"], used


def latencies(broker_url: str) -> tuple[float, float, int]:
    """p50 and p95 (ms) of SEARCHES searches, each a query with a domain and a grade filter."""
    domains = [domain.id for domain in shipped()]
    chance = random.Random(7)  # noqa: S311 - test data
    timings = []
    hits = 0
    with httpx.Client(base_url=broker_url, headers={"X-Api-Key": KEY}, timeout=30) as client:
        for number in range(SEARCHES + 20):
            params = {
                "q": QUERIES[number % len(QUERIES)],
                "domain": chance.choice(domains),
                "grade": GRADES[number % 2],
            }
            started = time.perf_counter()
            answer = client.get("/catalogue/v1/datasets", params=params)
            elapsed = (time.perf_counter() - started) * 1000
            answer.raise_for_status()
            if number >= 20:  # the first ones warm the caches
                timings.append(elapsed)
                hits += answer.json()["total"]
    quantiles = statistics.quantiles(timings, n=100)
    return quantiles[49], quantiles[94], hits


def copy_catalogue(source_url: str, target_url: str) -> int:
    """The crawled datasets, from the documents the SQLite catalogue kept, stored again through
    the store's own code on PostgreSQL."""
    source, target = create_engine(source_url), create_engine(target_url)
    copied = 0
    try:
        with Session(source) as session:
            providers = session.exec(select(CatalogueDataset.provider).distinct()).all()
        for provider in providers:
            with Session(source) as session:
                rows = session.exec(
                    select(CatalogueDataset).where(CatalogueDataset.provider == provider)
                ).all()
                address = rows[0].dsp_address
                documents = [json.loads(row.document) for row in rows]
            datasets = []
            for start in range(0, len(documents), 1000):  # pages, as a provider gives them
                page = {
                    "@context": ["https://w3id.org/dspace/2025/1/context.jsonld"],
                    "@type": "Catalog", "@id": f"{provider}#catalog", "participantId": provider,
                    "dataset": documents[start : start + 1000],
                }  # fmt: skip
                datasets += parse_catalog(page, provider)
            with Session(target) as session:
                replace_provider(session, provider, address, datasets, datetime.now(UTC))
                session.commit()
            copied += len(datasets)
        # after a bulk load, as PostgreSQL's "Populating a Database" says (autovacuum would
        # do it within its naptime; the searches start at once)
        with target.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(sa.text("VACUUM ANALYZE"))
    finally:
        source.dispose()
        target.dispose()
    return copied


def store_catalogue(database_url: str, count: int, assets: int) -> int:
    """The catalogue a crawl of ``count`` connectors would store, without the crawl: each
    connector's datasets as its catalogue shows them (the connector's own dataset documents),
    parsed and stored by the broker's own code (``--search-only``)."""
    engine = create_engine(database_url)
    now = datetime.now(UTC)
    domains = Domains(shipped())
    stored = 0
    try:
        for number in range(count):
            provider = f"did:web:127.0.0.1%3A{9000 + number}:provider{number}"
            endpoint = f"http://127.0.0.1:{9000 + number}/dsp"
            service = data_service(provider, endpoint)["@id"]
            offer = {**MEMBERS, "@id": "urn:kexin:offer:x", "@type": "Offer",
                     "assigner": provider}  # fmt: skip
            documents = [
                dataset_document(Asset(**row), [offer], service, domains.get(row["domain"]))
                for row in asset_rows(number, now, assets)
            ]
            datasets = []
            for start in range(0, len(documents), 1000):
                page = {
                    "@context": ["https://w3id.org/dspace/2025/1/context.jsonld"],
                    "@type": "Catalog", "@id": f"{provider}#catalog", "participantId": provider,
                    "dataset": documents[start : start + 1000],
                }  # fmt: skip
                datasets += parse_catalog(page, provider)
            with Session(engine) as session:
                replace_provider(session, provider, endpoint, datasets, now)
                session.commit()
            stored += len(datasets)
    finally:
        engine.dispose()
    return stored


def search_only(count: int, assets: int, postgres: bool) -> list[str]:
    """Search alone, over a catalogue stored without crawling, on SQLite and PostgreSQL."""
    missed = []
    with tempfile.TemporaryDirectory(prefix="kexin-broker-bench-") as scratch, ExitStack() as stack:
        targets: list[tuple[str, str]] = [("SQLite", f"sqlite:///{Path(scratch) / 'broker.db'}")]
        if postgres:
            url = stack.enter_context(postgres_database())
            if url is None:
                print("search, PostgreSQL: not measured (not installed: make postgres)")
                missed.append("search on PostgreSQL (not installed)")
            else:
                targets.append(("PostgreSQL", url))
        for name, url in targets:
            sock = bind()
            settings = broker_settings(sock, url, {})
            with serve_in_thread(create_broker(settings), sock) as broker_url:
                started = time.perf_counter()
                stored = store_catalogue(url, count, assets)
                print(
                    f"{name}: {stored:,} datasets stored in {time.perf_counter() - started:.1f} s",
                    file=sys.stderr,
                )
                p50, p95, hits = latencies(broker_url)
            print(
                f"search, {name} ({stored:,} datasets): p50 {p50:.1f} ms, p95 {p95:.1f} ms "
                f"({hits:,} hits in all; targets {P50_TARGET_MS:.0f}/{P95_TARGET_MS:.0f} ms)"
            )
            if p50 > P50_TARGET_MS or p95 > P95_TARGET_MS:
                missed.append(f"search on {name}")
    return missed


@contextmanager
def postgres_database() -> Iterator[str | None]:
    from tests.postgres import cluster, create_database, find_bindir  # bench only

    bindir = find_bindir()
    if bindir is None:
        yield None
        return
    with cluster(bindir) as admin:
        yield create_database(admin, "broker_bench")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--providers", type=int, default=PROVIDERS, help="smoke runs: fewer")
    parser.add_argument("--assets", type=int, default=ASSETS, help="smoke runs: fewer")
    parser.add_argument(
        "--search-only", action="store_true",
        help="no crawl: search over a catalogue stored straight from the datasets' documents",
    )  # fmt: skip
    options = parser.parse_args()
    count, assets = options.providers, options.assets
    if options.search_only:
        missed = search_only(count, assets, not options.no_postgres)
        if missed:
            print(f"MISSED: {', '.join(missed)}")
        return 1 if missed else 0
    missed = []
    with (
        tempfile.TemporaryDirectory(prefix="kexin-broker-bench-") as scratch,
        ExitStack() as servers,
    ):
        folder = Path(scratch)
        broker_sock = bind()
        authority = did(broker_sock, "authority")
        socks = [bind() for _ in range(count)]
        providers = [
            connector(sock, folder, f"provider{n}", authority).model_copy(
                update={"catalog_page_size": 1000}
            )
            for n, sock in enumerate(socks)
        ]
        allow = {
            p.participant_id: OnboardingGrant.model_validate(
                {"types": ["MembershipCredential"], "organisation": BUREAU_ORG}
            )
            for p in providers
        }
        sqlite_url = f"sqlite:///{folder / 'broker.db'}"
        broker = broker_settings(
            broker_sock, sqlite_url, allow, organisation=BROKER_ORG,
            crawl_provider_timeout_s=600.0,
        )  # fmt: skip
        broker_url = servers.enter_context(serve_in_thread(create_broker(broker), broker_sock))
        now = datetime.now(UTC)
        pids: dict[str, int] = {}
        for number, (settings, sock) in enumerate(zip(providers, socks, strict=True)):
            sock.close()
            pids[settings.participant_id] = servers.enter_context(serve_process(settings))
            seed(settings, number, now, assets)

        async def onboard(settings: ConnectorSettings) -> None:
            async with standalone(settings) as (participant, client):
                types = [CredentialType.MEMBERSHIP]
                await request_credentials(participant, client, authority, types)

        for settings in providers:
            asyncio.run(onboard(settings))
        print(f"{count} connectors of {assets:,} assets each, onboarded", file=sys.stderr)

        cold_s, reports, used = crawl(broker_url, pids)
        stored = sum(r["datasets"] for r in reports)
        states = sorted({r["state"] for r in reports})
        print(
            f"cold crawl: {stored:,} datasets in {cold_s:.1f} s ({states}; "
            f"target <= {COLD_TARGET_S:.0f} s); {used}"
        )
        if stored != count * assets or states != ["current"] or cold_s > COLD_TARGET_S:
            missed.append("cold crawl")

        unchanged_s, reports, used = crawl(broker_url, pids)
        print(
            f"refresh, nothing changed: {unchanged_s:.1f} s "
            f"({sum(r['pagesUnchanged'] for r in reports)} pages unchanged, "
            f"{sum(r['pagesRead'] for r in reports)} read); {used}"
        )
        for spread in (True, False):
            for number, settings in enumerate(providers):
                change(settings, number, assets, spread=spread)
            refresh_s, reports, used = crawl(broker_url, pids)
            changed = sum(r["changed"] for r in reports)
            where = "on every page" if spread else "on one page of each connector"
            print(
                f"refresh, 1 % changed {where}: {changed:,} changed found in {refresh_s:.1f} s "
                f"({sum(r['pagesRead'] for r in reports)} pages read, "
                f"{sum(r['pagesUnchanged'] for r in reports)} unchanged; "
                f"target <= {REFRESH_TARGET_S:.0f} s); {used}"
            )
            if changed != count * (assets // 100) or refresh_s > REFRESH_TARGET_S:
                missed.append(f"refresh ({where})")

        p50, p95, hits = latencies(broker_url)
        print(
            f"search, SQLite: p50 {p50:.1f} ms, p95 {p95:.1f} ms ({hits:,} hits in all; "
            f"targets {P50_TARGET_MS:.0f}/{P95_TARGET_MS:.0f} ms)"
        )
        if p50 > P50_TARGET_MS or p95 > P95_TARGET_MS:
            missed.append("search on SQLite")

        if not options.no_postgres:
            with postgres_database() as postgres_url:
                if postgres_url is None:
                    print("search, PostgreSQL: not measured (not installed: make postgres)")
                    missed.append("search on PostgreSQL (not installed)")
                else:
                    pg_sock = bind()
                    pg_broker = broker_settings(pg_sock, postgres_url, {})
                    with serve_in_thread(create_broker(pg_broker), pg_sock) as pg_url:
                        copied = copy_catalogue(sqlite_url, postgres_url)
                        p50, p95, hits = latencies(pg_url)
                    print(
                        f"search, PostgreSQL ({copied:,} datasets): p50 {p50:.1f} ms, "
                        f"p95 {p95:.1f} ms ({hits:,} hits in all)"
                    )
                    if p50 > P50_TARGET_MS or p95 > P95_TARGET_MS:
                        missed.append("search on PostgreSQL")
    if missed:
        print(f"MISSED: {', '.join(missed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
