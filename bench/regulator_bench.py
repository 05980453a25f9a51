"""Regulator query benchmark (issue 14: the regulator's query for one participant's flows over
1,000,000 stored events answers in <= 100 ms, p50).

Set-up: a fresh SQLite ledger database (a file, WAL) filled as the regulator's archive stores
accepted batches (:func:`ledger.archive.accept`): 1,000,000 events of 10 participants (100,000
each, interleaved in time, 100 ms apart over all participants, so about 28 hours), each
participant's in batches of 10,000: ``ledger_event`` rows chained by :func:`ledger.store.append`,
each batch's real Merkle root signed by the participant's Ed25519 key
(:func:`ledger.store.save_batch`) and marked anchored (:func:`ledger.store.mark_anchored`; no
chain is run: the anchor's block and transaction are made up, the queries never read them), and
the ``ledger_flow`` index rows (:func:`ledger.archive.flow_row`), in one transaction a batch.
The index rows go through the driver's executemany, as :func:`ledger.store.append` writes the
events: the values that ``accept``'s Core insert stores (a test compares), without SQLAlchemy's
per-row parameter building. The batches' ``ledger_received_batch`` rows (the DID document a
batch was checked against) are left out: no query reads them.
Counterparties, assets, purposes, domains, grades and person counts vary from event to event.
Events are built, canonicalised and hashed in one worker process per core, at a lower
priority; chaining and storing run in the main process. The fill is timed and printed.

Then the regulator asks through the real HTTP route: the ledger service (``ledger.app``), the
data-space authority and the regulator's connector (its DID document and Credential Service)
each served by uvicorn on loopback in this process; the regulator is onboarded with a
``MembershipCredential`` and a ``RegulatorCredential`` issued by the authority, and every query
carries a fresh DCP self-issued ID token (minted before the clock starts; the ledger checks it
and, when its cache of the regulator's verified presentation has expired, asks the regulator's
Credential Service again, as in production). Three kinds of query of ``GET /ledger/v1/flows``
for one participant (a different participant each time, in turn), 100 flows a page: the first
page, a page deep in (offset 50,000) and the first page of a time window (10 % of the span).
Each answer is checked (status, which flows, their order). A query's time is from the request
sent to the whole JSON answer read and parsed by the client. For comparison it also times
:func:`ledger.archive.flows` alone (the SQL query, no HTTP, no authentication, no JSON).

The database is warm (the machine's page cache holds it): the figures are not a cold disk's.

Run: ``make bench`` (or ``.venv/bin/python -m bench.regulator_bench``; ``--runs``, ``--events``,
``--queries``). Exits 1 if the target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import httpx
from sqlalchemy import Table, insert
from sqlalchemy.engine import Dialect, Engine
from sqlmodel import Session

from bench.connector_bench import PASSPHRASE, authority_for, connector, did
from bench.ledger_bench import WORKER_NICENESS
from broker.app import create_app as create_broker
from broker.settings import BrokerSettings, OnboardingGrant
from connector.app import create_app as create_connector
from connector.dcp.client import request_credentials
from connector.participant import standalone
from connector.settings import ConnectorSettings
from dataspace.demo import LOOPBACK, REGULATOR_ORG
from dataspace.servers import bind, serve_in_thread
from identity import keys
from identity.credentials import CredentialType
from identity.presentations import EVERY_SCOPE
from ledger import archive, store
from ledger.app import create_app as create_ledger
from ledger.batches import build_header, sign_header
from ledger.database import LedgerBase, migrations
from ledger.events import AccessOutcome, DataAccessed, EventType, LedgerEvent, LegalBasis
from ledger.hashchain import GENESIS
from ledger.machine import BatchReady, Closed
from ledger.settings import LedgerSettings
from policy.operands import Grade
from storage.engine import create_engine
from storage.migrate import upgrade

P50_MS_TARGET: Final = 100.0
EVENTS: Final = 1_000_000
PARTICIPANTS: Final = 10
BATCH: Final = 10_000
"""Events a batch (and a worker's task: one batch of one participant)."""
PAGE: Final = 100
DEEP_OFFSET: Final = 50_000
WINDOW_SHARE: Final = 0.10
"""The time window's share of the whole span, from its middle."""
STEP: Final = timedelta(milliseconds=100)
"""Between two consecutive events, over all participants."""
T0: Final = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
PURPOSES: Final = ("credit-assessment", "statistics", "risk-control", "public-health")
DOMAINS: Final = ("finance", "health", "transport", "government")
ASSETS: Final = 50
GRADES: Final = (Grade.GENERAL, Grade.IMPORTANT, Grade.CORE)


def participant_did(index: int) -> str:
    return f"did:web:p{index:02d}.example.cn"


def occurred_at(index: int, k: int, participants: int) -> datetime:
    """When participant ``index``'s ``k``-th event occurred (participants take turns)."""
    return T0 + STEP * (k * participants + index)


def make_event(index: int, k: int, participants: int) -> LedgerEvent:
    """Participant ``index``'s ``k``-th event: a data access to one of the others."""
    n = k * participants + index
    other = (index + 1 + n % (participants - 1)) % participants if participants > 1 else index
    flow = f"{index}-{k // 4}"
    return LedgerEvent(
        participant=participant_did(index),
        occurred_at=occurred_at(index, k, participants),
        counterparty=participant_did(other),
        provider_pid=f"urn:uuid:p-{flow}",
        consumer_pid=f"urn:uuid:c-{flow}",
        asset_id=f"asset-{n % ASSETS}",
        data_grade=GRADES[n % len(GRADES)],
        personal_information=n % 3 != 0,
        person_count=0 if n % 3 == 0 else 1 + n % 5_000,
        purpose=PURPOSES[n % len(PURPOSES)],
        legal_basis=None if n % 3 == 0 else LegalBasis.CONTRACT_OR_EMPLOYMENT,
        scenario_domain=DOMAINS[(n // 7) % len(DOMAINS)],
        cross_border=n % 101 == 0,
        detail=DataAccessed(
            type=EventType.DATA_ACCESSED,
            transfer_id=f"urn:uuid:t-{flow}",
            bytes_sent=4096 + n % 100_000,
            rows_sent=1 + n % 1_000,
            outcome=AccessOutcome.COMPLETE,
        ),
    )


@dataclass(frozen=True)
class Task:
    """One batch of one participant's events."""

    index: int
    batch_sequence: int
    first: int
    count: int
    participants: int


def build_batch(task: Task) -> tuple[list[store.HashedEvent], list[dict[str, Any]]]:
    """In a worker: build, canonicalise and hash a batch's events, with their index rows (a
    fresh ledger: the participant's ``k``-th event gets sequence ``k``)."""
    built = [
        (k, make_event(task.index, k, task.participants))
        for k in range(task.first, task.first + task.count)
    ]
    return [store.hash_event(e) for _, e in built], [archive.flow_row(k, e) for k, e in built]


def tasks_of(events: int, participants: int, batch: int) -> list[Task]:
    """Every participant's batches, round by round (a participant's in order)."""
    each = events // participants
    return [
        Task(index, first // batch, first, min(batch, each - first), participants)
        for first in range(0, each, batch)
        for index in range(participants)
    ]


Processors = list[tuple[int, Callable[[Any], Any]]]


def driver_insert(table: Table, dialect: Dialect) -> tuple[str, Processors] | None:
    """On SQLite, the INSERT of an index row as the driver takes it (the values in the order of
    :func:`archive.flow_row`'s keys) and each column's bind processor: the values SQLAlchemy's
    Core insert (:func:`archive.accept`) would store, without its per-row parameter building
    (a test compares both). ``None`` elsewhere."""
    keys = list(archive.flow_row(0, make_event(0, 0, 2)))
    if dialect.name != "sqlite" or dialect.paramstyle != "qmark":
        return None
    compiled = insert(table).compile(dialect=dialect, column_keys=keys)
    if list(compiled.positiontup or ()) != keys:
        return None
    processors: Processors = [
        (n, process)
        for n, key in enumerate(keys)
        if (process := table.c[key].type.dialect_impl(dialect).bind_processor(dialect))
    ]
    return str(compiled), processors


def driver_rows(rows: list[dict[str, Any]], processors: Processors) -> list[tuple[Any, ...]]:
    converted = []
    for row in rows:
        values = list(row.values())
        for n, process in processors:
            values[n] = process(values[n])
        converted.append(tuple(values))
    return converted


class Archive:
    """A fresh regulator's ledger database (SQLite file), filled as :func:`archive.accept`
    stores batches."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "regulator-ledger.db"
        self.url = f"sqlite:///{self.path}"
        self.engine: Engine = create_engine(self.url)
        upgrade(self.engine, migrations())
        self.flows = LedgerBase.metadata.tables[archive.FlowRecord.__tablename__]
        self.flow_insert = driver_insert(self.flows, self.engine.dialect)
        self.keys: dict[str, keys.PrivateKey] = {}
        self.roots: dict[str, bytes] = {}
        self.blocks = 0

    def take(self, task: Task, hashed: list[store.HashedEvent], rows: list[dict[str, Any]]) -> None:
        participant = participant_did(task.index)
        key = self.keys.setdefault(participant, keys.generate(keys.KeyType.ED25519))
        now = datetime.now(UTC)
        with Session(self.engine) as session:
            links = store.append(session, participant, hashed, batch_sequence=task.batch_sequence)
            if links[0].sequence != task.first or len(links) != task.count:
                raise RuntimeError(f"{participant}: chained from {links[0].sequence}")
            ready = BatchReady(
                task.batch_sequence, task.first, task.first + task.count - 1, Closed.FULL
            )
            header, _tree = build_header(
                participant, ready, links, self.roots.get(participant, GENESIS), now
            )
            store.save_batch(session, header, sign_header(header, f"{participant}#key-1", key))
            self.blocks += 1
            transaction = "0x" + os.urandom(32).hex()
            store.mark_anchored(
                session, participant, task.batch_sequence, transaction, self.blocks, now
            )
            if self.flow_insert is None:
                session.execute(insert(self.flows), rows)
            else:
                statement, processors = self.flow_insert
                session.connection().exec_driver_sql(statement, driver_rows(rows, processors))
            session.commit()
        self.roots[participant] = header.root_bytes

    def close(self) -> None:
        self.engine.dispose()


def fill(archive_db: Archive, events: int, participants: int, workers: int, batch: int) -> float:
    """Seconds to store ``events`` events of ``participants`` participants."""
    started = time.perf_counter()
    with ProcessPoolExecutor(
        max_workers=workers, initializer=os.nice, initargs=(WORKER_NICENESS,)
    ) as pool:
        tasks = tasks_of(events, participants, batch)
        for task, (hashed, rows) in zip(tasks, pool.map(build_batch, tasks), strict=True):
            archive_db.take(task, hashed, rows)
    return time.perf_counter() - started


@dataclass(frozen=True)
class Kind:
    """A kind of query of one participant's flows, 100 a page."""

    name: str
    offset: int = 0
    since: datetime | None = None
    until: datetime | None = None

    def params(self, participant: str) -> dict[str, str | int]:
        params: dict[str, str | int] = {"participant": participant, "limit": PAGE}
        if self.offset:
            params["offset"] = self.offset
        if self.since is not None and self.until is not None:
            params |= {"from": self.since.isoformat(), "to": self.until.isoformat()}
        return params

    def query(self, participant: str) -> archive.FlowQuery:
        return archive.FlowQuery(
            participant=participant, since=self.since, until=self.until, offset=self.offset,
            limit=PAGE,
        )  # fmt: skip

    def expected(self, index: int, events: int, participants: int) -> list[int]:
        """The sequences of participant ``index``'s flows that the answer holds, in order."""
        each = events // participants
        first = 0
        if self.since is not None:
            steps = -((T0 - self.since) // STEP)  # the first step at or after `since`
            first = max(0, -(-(steps - index) // participants))
        last = each
        if self.until is not None:
            steps = -((T0 - self.until) // STEP)  # the first step at or after `until`
            last = min(each, max(0, -(-(steps - index) // participants)))
        return list(range(first, last))[self.offset : self.offset + PAGE]


def kinds_of(events: int, participants: int) -> list[Kind]:
    deep = min(DEEP_OFFSET, max(events // participants - PAGE, 0))
    span = STEP * events
    since = T0 + span * (0.5 - WINDOW_SHARE / 2)
    return [
        Kind("first page"),
        Kind(f"offset {deep:,}", offset=deep),
        Kind("time window", since=since, until=since + span * WINDOW_SHARE),
    ]


def percentiles_ms(times_s: list[float]) -> tuple[float, float]:
    """p50 and p95, in milliseconds."""
    ordered = sorted(times_s)
    p95 = statistics.quantiles(ordered, n=20)[18] if len(ordered) > 1 else ordered[0]
    return statistics.median(ordered) * 1000, p95 * 1000


def check_page(body: dict[str, Any], participant: str, expected: list[int]) -> None:
    flows = body["flows"]
    got = [flow["sequence"] for flow in flows]
    if got != expected:
        raise RuntimeError(f"{participant}: sequences {got[:3]}..., expected {expected[:3]}...")
    if any(
        flow["participant"] != participant or flow["event"]["participant"] != participant
        for flow in flows
    ):
        raise RuntimeError(f"another participant's flow in {participant}'s answer")
    times = [flow["event"]["occurredAt"] for flow in flows]
    if times != sorted(times):
        raise RuntimeError(f"{participant}: flows not oldest first")


def in_process_ms(
    engine: Engine, kinds: list[Kind], queries: int, events: int, participants: int
) -> dict[str, tuple[float, float]]:
    """p50 and p95 of :func:`archive.flows` alone, per kind."""
    figures = {}
    for kind in kinds:
        times = []
        for n in range(queries):
            index = n % participants
            query = kind.query(participant_did(index))
            started = time.perf_counter()
            with Session(engine) as session:
                rows = archive.flows(session, query)
            times.append(time.perf_counter() - started)
            got = [row.sequence for row, _body, _batch in rows]
            if got != kind.expected(index, events, participants):
                raise RuntimeError(f"archive.flows: {kind.name}: sequences {got[:3]}...")
        figures[kind.name] = percentiles_ms(times)
    return figures


@dataclass(frozen=True)
class Service:
    url: str
    ledger_id: str
    regulator: ConnectorSettings


def authority_settings(sock: Any, folder: Path, regulator: ConnectorSettings) -> BrokerSettings:
    """The data-space authority, issuing the regulator its two credentials by allow-list."""
    return authority_for(sock, folder, {
        regulator.participant_id: OnboardingGrant.model_validate(
            {"types": ["MembershipCredential", "RegulatorCredential"],
             "organisation": REGULATOR_ORG}
        ),
    })  # fmt: skip


@contextmanager
def service(folder: Path, database_url: str) -> Iterator[Service]:
    """The authority, the regulator's connector and the ledger service on loopback (threads of
    this process), the regulator onboarded."""
    with ExitStack() as stack:
        authority_sock, regulator_sock, ledger_sock = bind(), bind(), bind()
        authority = did(authority_sock, "authority")
        regulator = connector(regulator_sock, folder, "regulator", authority)
        ledger = LedgerSettings(
            ledger_id=did(ledger_sock, "ledger"),
            public_url=f"http://127.0.0.1:{ledger_sock.getsockname()[1]}",
            database_url=database_url,
            key_passphrase=PASSPHRASE,
            trusted_issuers={kind: [authority] for kind in CredentialType},
            did_web_allow_http=True,
            outbound_allowed_networks=LOOPBACK,
        )
        broker = create_broker(authority_settings(authority_sock, folder, regulator))
        stack.enter_context(serve_in_thread(broker, authority_sock))
        stack.enter_context(serve_in_thread(create_connector(regulator), regulator_sock))
        url = stack.enter_context(serve_in_thread(create_ledger(ledger), ledger_sock))

        async def onboard() -> dict[str, object]:
            async with standalone(regulator) as (participant, client):
                types = [CredentialType.MEMBERSHIP, CredentialType.REGULATOR]
                return await request_credentials(participant, client, authority, types)

        status = asyncio.run(onboard())
        if status.get("status") != "ISSUED":
            raise RuntimeError(f"the regulator was not onboarded: {status}")
        yield Service(url, ledger.ledger_id, regulator)


async def _ask_all(
    where: Service, kinds: list[Kind], queries: int, events: int, participants: int
) -> dict[str, tuple[float, float]]:
    figures = {}
    async with standalone(where.regulator) as (participant, client):
        for warm_up in (True, False):
            for kind in kinds:
                times = []
                for n in range(1 if warm_up else queries):
                    index = n % participants
                    params = kind.params(participant_did(index))
                    token = participant.sts.bearer_for(where.ledger_id, EVERY_SCOPE)
                    headers = {"Authorization": f"Bearer {token}"}
                    started = time.perf_counter()
                    response = await client.get(
                        f"{where.url}/ledger/v1/flows", params=params, headers=headers
                    )
                    body = response.json()
                    times.append(time.perf_counter() - started)
                    if response.status_code != httpx.codes.OK:
                        raise RuntimeError(f"{kind.name}: {response.status_code} {body}")
                    expected = kind.expected(index, events, participants)
                    check_page(body, participant_did(index), expected)
                if not warm_up:
                    figures[kind.name] = percentiles_ms(times)
    return figures


def over_http_ms(
    where: Service, kinds: list[Kind], queries: int, events: int, participants: int
) -> dict[str, tuple[float, float]]:
    """p50 and p95 of ``GET /ledger/v1/flows`` as the regulator, per kind (after one query of
    each kind to warm up: the first pulls the regulator's presentation)."""
    return asyncio.run(_ask_all(where, kinds, queries, events, participants))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="rounds of queries")
    parser.add_argument("--events", type=int, default=EVENTS)
    parser.add_argument("--participants", type=int, default=PARTICIPANTS)
    parser.add_argument("--queries", type=int, default=60, help="of each kind, a round")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    options = parser.parse_args()
    participants = options.participants
    events = options.events - options.events % participants
    kinds = kinds_of(events, participants)
    print(f"regulator: {events:,} events of {participants} participants "
          f"({events // participants:,} each), batches of {BATCH:,}, "
          f"{options.workers} workers")  # fmt: skip
    print(f"  {options.queries} queries of each kind a run, participants in turn")
    rounds: list[dict[str, tuple[float, float]]] = []
    with tempfile.TemporaryDirectory(prefix="kexin-regulator-bench-") as scratch:
        folder = Path(scratch)
        archive_db = Archive(folder)
        fill_s = fill(archive_db, events, participants, options.workers, BATCH)
        size_mib = archive_db.path.stat().st_size / 2**20
        print(f"  fill: {fill_s:.1f} s ({events / fill_s:,.0f} events/s), "
              f"database {size_mib:,.0f} MiB")  # fmt: skip
        alone = in_process_ms(archive_db.engine, kinds, options.queries, events, participants)
        for name, (p50, p95) in alone.items():
            print(f"  archive.flows alone (no HTTP), {name}: p50 {p50:.1f} ms, p95 {p95:.1f} ms")
        archive_db.close()
        with service(folder, archive_db.url) as where:
            for run in range(options.runs):
                rounds.append(over_http_ms(where, kinds, options.queries, events, participants))
                for name, (p50, p95) in rounds[-1].items():
                    print(f"  GET /flows over HTTP with DCP, {name}, run {run + 1}: "
                          f"p50 {p50:.1f} ms, p95 {p95:.1f} ms")  # fmt: skip
    met = True
    for kind in kinds:
        p50 = statistics.median(r[kind.name][0] for r in rounds)
        ok = p50 <= P50_MS_TARGET
        met = met and ok
        print(f"  {kind.name}: p50 {p50:.1f} ms (median of {options.runs} runs; "
              f"target <= {P50_MS_TARGET:.0f} ms){'' if ok else ' TARGET MISSED'}")  # fmt: skip
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
