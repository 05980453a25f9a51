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
from typing import Any

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

    def matching_assets(self) -> list[tuple[str, dict[str, Any]]]:
        """Every asset whose data address makes it a matching set, with that address."""
        with Session(self.engine) as session:
            rows = session.exec(
                select(Asset.id, Asset.data_address).where(
                    col(Asset.data_address).contains('"matching"')
                )
            ).all()
        found = []
        for asset_id, data_address in rows:
            address = json.loads(data_address)
            if isinstance(address, dict) and "matching" in address:
                found.append((asset_id, address))
        return found

    def bring_up(self, asset_id: str, address: dict[str, Any]) -> bool:
        """The asset's setup brought up to its data (computed if it changed); False when it
        could not be now (its source down, a setup another caller is computing, an address
        that is no matching set after all): the next look tries again."""
        try:
            if matching_of(address) is None:
                return False
            self.sets.current(asset_id, address, wait=False)
            return True
        except SourceError as error:
            log.debug("matching set %s not looked at: %s", asset_id, error.message)
        except Exception as error:  # one bad asset must not keep the others from being seen
            log.warning("matching set %s not looked at: %s", asset_id, one_line(error))
        return False

    def look(self) -> list[str]:
        """Blocking: look at each matching asset once; the assets missed."""
        return [a for a, address in self.matching_assets() if not self.bring_up(a, address)]

    async def _look(self) -> None:
        """One look, each asset in its own worker-thread call: a shutdown waits for one asset's
        setup at most, not for all of them."""
        for asset_id, address in await run_to_completion(self.matching_assets):
            await run_to_completion(self.bring_up, asset_id, address)

    async def run(self) -> None:
        """Look every ``interval_s``; after a failed look (the database), again sooner: from
        half a second, doubling up to the interval."""
        retry_s = RETRY_FROM_S
        while True:
            try:
                await self._look()
                self.failing, retry_s = None, RETRY_FROM_S
                await asyncio.sleep(self.interval_s)
            except Exception as error:  # a bad look must not end the worker
                self.failing = one_line(error)
                log.warning("looking at the matching sets failed, retrying: %s", self.failing)
                await asyncio.sleep(min(retry_s, self.interval_s))
                retry_s *= 2
