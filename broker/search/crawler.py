"""The broker's crawler: the federated catalogue kept in step with every active participant's
DSP catalogue, on a schedule (``BROKER_CRAWL_INTERVAL_S``), on the operator's command, and at
once when a provider tells the broker that its catalogue changed (:meth:`Crawler.notice`; a
burst of notices within ``BROKER_CRAWL_NOTICE_SETTLE_S`` is one crawl of that provider).

Up to ``PARALLEL_PROVIDERS`` providers' catalogues are read at once (each provider's pages in
order, as its ``Link`` headers chain them); each provider is stored in one transaction, one at a
time, in a worker thread (the event loop reads other catalogues meanwhile), and only its new,
changed and withdrawn datasets are written (:func:`broker.search.store.replace_provider`).
A refresh asks for each page with the validator the last good crawl got for it: a page the
provider answers ``304`` for is neither parsed nor compared nor stored again (its datasets
stay; :mod:`broker.search.client`). The pages' validators are written with the datasets, in
their transaction, and dropped with them.
A provider's datasets are replaced by what its catalogue shows the broker now (a withdrawn
dataset disappears within one refresh), or, when it does not answer or its answer is refused,
nothing but its crawl state changed (stale or refused, with
the reason and the time of its last good crawl); its datasets are dropped once that last good
crawl is older than the grace period (``BROKER_CRAWL_GRACE_S``). A participant that is no
longer active in the registry (suspended, revoked) or no longer publishes a DSP address has its
datasets dropped at the next round. Each round reads every participant's DSP address afresh
from its DID document (a connector that moved, or that published none when it was onboarded).
A provider's failure never stops the round.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

import anyio
import httpx
from anyio.to_thread import run_sync
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from broker.authority.issuer import dsp_address
from broker.registry.machine import State
from broker.registry.store import RegisteredParticipant, utc
from broker.search.client import Catalogue, CrawlLimits, UnreachableError, fetch_catalogue
from broker.search.messages import CatalogueRefusedError
from broker.search.store import (
    CrawlState,
    PageRecord,
    ProviderCrawl,
    drop_provider,
    replace_pages,
    replace_provider,
    stored_pages,
)
from identity.errors import IdentityError
from identity.participant import Participant
from service.destinations import Destinations
from service.logs import one_line

log = logging.getLogger("kexin.broker.crawler")

PARALLEL_PROVIDERS: Final = 4
"""Providers whose catalogues are read at the same time in a round."""


@dataclass(frozen=True)
class CrawlReport:
    provider: str
    state: CrawlState | None
    """None: the provider's datasets were dropped (no longer active, or past the grace)."""
    reason: str | None = None
    datasets: int = 0
    added: int = 0
    changed: int = 0
    removed: int = 0
    pages_read: int = 0
    """Pages answered in full."""
    pages_unchanged: int = 0
    """Pages the provider answered 304 for: their datasets stayed as stored."""


class Crawler:
    def __init__(
        self,
        *,
        engine: Engine,
        participant: Participant,
        client: httpx.AsyncClient,
        destinations: Destinations,
        limits: CrawlLimits,
        grace: timedelta,
        clock: Callable[[], datetime],
    ) -> None:
        self._engine = engine
        self._me = participant
        self._client = client
        self._destinations = destinations
        self._limits = limits
        self._grace = grace
        self._clock = clock
        self._round = asyncio.Lock()
        self._writing = anyio.Lock()  # not bound to one event loop (tests run several)
        self._noticed: set[str] = set()
        self._notice = asyncio.Event()

    async def _targets(self) -> dict[str, str]:
        """Every active participant's DSP address, read afresh from its DID document (the one
        the registry holds when the document cannot be read now)."""
        with Session(self._engine) as session:
            rows = session.exec(
                select(RegisteredParticipant).where(
                    RegisteredParticipant.state == State.ACTIVE.value
                )
            ).all()
            known = {row.did: row.dsp_address for row in rows if row.did != self._me.did}
        targets = {}
        for did, stored in known.items():
            address = await self._address(did, stored)
            if address is not None:
                targets[did] = address
        return targets

    async def _address(self, did: str, stored: str | None) -> str | None:
        try:
            address = dsp_address(await self._me.resolver.resolve(did))
        except IdentityError as error:
            log.info("DID document of %s not read: %s", did, one_line(error))
            address = stored
        if address != stored:
            self._record_address(did, address)
        return address

    def _record_address(self, did: str, address: str | None) -> None:
        with Session(self._engine) as session:
            row = session.get(RegisteredParticipant, did)
            if row is not None:
                row.dsp_address, row.updated_at = address, self._clock()
                session.add(row)
                session.commit()

    async def crawl_all(self) -> list[CrawlReport]:
        """One round: every active provider, then the datasets of those no longer active."""
        async with self._round:
            targets = await self._targets()
            slots = asyncio.Semaphore(PARALLEL_PROVIDERS)

            async def one(did: str, address: str) -> CrawlReport:
                async with slots:
                    return await self.crawl(did, address)

            reports = list(await asyncio.gather(*(one(d, a) for d, a in sorted(targets.items()))))
            reports += self._drop_inactive(set(targets))
            return reports

    def _drop_inactive(self, active: set[str]) -> list[CrawlReport]:
        reports = []
        with Session(self._engine) as session:
            for crawl in session.exec(select(ProviderCrawl)).all():
                if crawl.provider not in active:
                    drop_provider(session, crawl.provider)
                    session.delete(crawl)
                    session.commit()
                    reports.append(CrawlReport(crawl.provider, None, "no longer active"))
        return reports

    async def crawl(self, provider: str, dsp_address: str) -> CrawlReport:
        failure: tuple[CrawlState, str] | None = None
        catalogue = Catalogue([], [], [])
        known = await run_sync(self._known, provider, dsp_address)
        try:
            catalogue = await fetch_catalogue(
                self._me, self._client, self._destinations, provider, dsp_address, self._limits,
                known,
            )  # fmt: skip
        except UnreachableError as error:
            failure = (CrawlState.STALE, str(error))
        except CatalogueRefusedError as error:
            log.warning("catalogue of %s refused: %s", provider, one_line(error))
            failure = (CrawlState.REFUSED, f"{error.reason}: {error.message}")
        async with self._writing:  # one writer at a time (SQLite), never on the event loop
            if failure is not None:
                return await run_sync(self._failed, provider, dsp_address, *failure)
            return await run_sync(self._store, provider, dsp_address, catalogue)

    def _known(self, provider: str, dsp_address: str) -> dict[str, PageRecord]:
        """The pages of the provider's last good crawl (none if it moved since: every dataset
        is read and stored again with its new address)."""
        with Session(self._engine) as session:
            crawl = session.get(ProviderCrawl, provider)
            if crawl is None or crawl.last_success_at is None or crawl.dsp_address != dsp_address:
                return {}
            return stored_pages(session, provider)

    def _store(self, provider: str, dsp_address: str, catalogue: Catalogue) -> CrawlReport:
        now = self._clock()
        with Session(self._engine) as session:
            changes = replace_provider(
                session, provider, dsp_address, catalogue.datasets, now, catalogue.kept
            )
            replace_pages(session, provider, catalogue.pages)
            crawl = session.get(ProviderCrawl, provider) or ProviderCrawl(
                provider=provider, dsp_address=dsp_address, state=CrawlState.CURRENT.value,
                last_attempt_at=now,
            )  # fmt: skip
            crawl.dsp_address, crawl.state, crawl.reason = dsp_address, CrawlState.CURRENT, None
            crawl.datasets, crawl.last_attempt_at = catalogue.size, now
            crawl.last_success_at = now
            session.add(crawl)
            session.commit()
        return CrawlReport(
            provider, CrawlState.CURRENT, None, catalogue.size,
            changes.added, changes.changed, changes.removed,
            len(catalogue.pages) - catalogue.unchanged, catalogue.unchanged,
        )  # fmt: skip

    def _failed(
        self, provider: str, dsp_address: str, state: CrawlState, reason: str
    ) -> CrawlReport:
        now = self._clock()
        reason = reason[:1000]
        with Session(self._engine) as session:
            crawl = session.get(ProviderCrawl, provider) or ProviderCrawl(
                provider=provider, dsp_address=dsp_address, state=state.value, last_attempt_at=now
            )
            since = utc(crawl.last_success_at) if crawl.last_success_at else None
            if since is None or now - since > self._grace:
                dropped = drop_provider(session, provider)
                crawl.datasets = 0
                if dropped:
                    log.warning("datasets of %s dropped: no good crawl since %s", provider, since)
            crawl.dsp_address, crawl.state, crawl.reason = dsp_address, state.value, reason
            crawl.last_attempt_at = now
            session.add(crawl)
            session.commit()
            return CrawlReport(provider, state, reason, crawl.datasets)

    def notice(self, provider: str) -> None:
        """``provider`` (an authenticated, active member) says its catalogue changed."""
        self._noticed.add(provider)
        self._notice.set()

    async def refresh(self, provider: str) -> CrawlReport | None:
        """Crawl one provider now, if it is an active participant with a DSP address (None
        otherwise: the next round drops what it had)."""
        async with self._round:
            with Session(self._engine) as session:
                row = session.get(RegisteredParticipant, provider)
                if row is None or row.state != State.ACTIVE.value or provider == self._me.did:
                    return None
                stored = row.dsp_address
            address = await self._address(provider, stored)
            return None if address is None else await self.crawl(provider, address)

    async def follow_notices(self, settle_s: float) -> None:
        """Until cancelled: crawl each provider that sent a notice, ``settle_s`` after the first
        notice of a burst (the notices of the burst: one crawl); a failure is logged."""
        while True:
            await self._notice.wait()
            await asyncio.sleep(settle_s)
            self._notice.clear()
            due, self._noticed = self._noticed, set()
            for provider in sorted(due):
                try:
                    report = await self.refresh(provider)
                except Exception as error:
                    log.error("crawl of %s on its notice failed: %s", provider, one_line(error))
                else:
                    log.info("crawled %s on its notice: %s", provider, report)

    async def run(self, interval_s: float, before_round: Callable[[], object]) -> None:
        """Crawl every ``interval_s`` until cancelled (``before_round`` first: the broker
        renews its own membership); a failed round is logged, never fatal."""
        while True:
            try:
                before_round()
                await self.crawl_all()
            except Exception as error:
                log.error("crawl round failed: %s", one_line(error))
            await asyncio.sleep(interval_s)
