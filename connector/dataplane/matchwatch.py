"""Keeps the provider's matching setups current. A setup is computed when a matching set is
published; this worker looks at every matching asset's data every ``interval_s`` (a file: one
``stat``, read again only when it changed; a query: run again) and computes the setup of a new
data version as soon as it sees one, so that the next run pays only for its online phase. A
run still checks the data's version itself when it starts: it never uses an old setup, even
between two looks."""

from __future__ import annotations

import asyncio
import json
import logging

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from connector.catalog.store import Asset
from connector.dataplane.matchsets import MatchingSets, matching_of
from connector.dataplane.sources import SourceError
from service.logs import one_line
from service.threads import run_to_completion

log = logging.getLogger("kexin.connector.matching")

RETRY_FROM_S = 0.5


class MatchingWatch:
    def __init__(self, *, engine: Engine, sets: MatchingSets, interval_s: float) -> None:
        self.engine, self.sets, self.interval_s = engine, sets, interval_s
        self.failing: str | None = None
        """Why the last look failed as a whole (the database), while it keeps failing."""

    def look(self) -> list[str]:
        """Blocking: bring each matching asset's setup up to its data once; the assets whose
        setup could not be had now (a source down, a setup another caller is computing)."""
        with Session(self.engine) as session:
            rows = session.exec(
                select(Asset.id, Asset.data_address).where(
                    col(Asset.data_address).contains('"matching"')
                )
            ).all()
        missed = []
        for asset_id, data_address in rows:
            address = json.loads(data_address)
            if matching_of(address) is None:
                continue
            try:
                self.sets.current(asset_id, address, wait=False)
            except SourceError as error:
                missed.append(asset_id)
                log.debug("matching set %s not looked at: %s", asset_id, error.message)
        return missed

    async def run(self) -> None:
        """Look every ``interval_s``; after a failed look (the database), again sooner: from
        half a second, doubling up to the interval."""
        retry_s = RETRY_FROM_S
        while True:
            try:
                await run_to_completion(self.look)
                self.failing, retry_s = None, RETRY_FROM_S
                await asyncio.sleep(self.interval_s)
            except Exception as error:  # a bad look must not end the worker
                self.failing = one_line(error)
                log.warning("looking at the matching sets failed, retrying: %s", self.failing)
                await asyncio.sleep(min(retry_s, self.interval_s))
                retry_s *= 2
