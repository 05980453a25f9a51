"""Matching sets: an asset whose data address names a column of identifiers (``"matching":
{"column": "uscc", "kind": "uscc"}`` beside a ``file`` or ``sql`` address) is offered for
private set intersection only (``PSI-PULL``), never downloaded.

The provider computes the set's server setup (``matching.setup``) when the asset is published,
and again whenever its data changed: a file is read again when its inode, size or modification
time differ from the last reading, a SQL query's result at every run (a database says nothing
cheaper about whether a result changed). The setup is kept with the data version it was made
from (the SHA-256 of the normalised set) and reused until the data changes; a run is bound to
the setup of the version current when it starts, so it never uses an old version's setup.
Invalid identifiers in the provider's own column are counted and reported to the provider (its
log and audit trail), never matched.

What this does not do: decide who may run (``plane`` and ``matchruns``), or compute a setup on
more than one core (the library's setup is one call).
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from sqlalchemy import text
from sqlalchemy.engine import Engine

from connector.audit import AuditRecord, AuditSink, Outcome
from connector.dataplane.sources import AddressError, SourceError, SourceRules
from matching.errors import MatchingError
from matching.identifiers import Kind, Normalised, normalise, read_rows
from matching.parallel import Workers
from matching.setup import PreparedSetup, SetupStore, prepare

log = logging.getLogger("kexin.dataplane")

PSI_PULL: Final = "PSI-PULL"
"""The transfer type of a matching set (alongside ``HttpData-PULL``)."""
UNAVAILABLE: Final = "the matching set is unavailable"


@dataclass(frozen=True)
class MatchingAddress:
    column: str
    kind: Kind


def matching_of(address: Mapping[str, Any]) -> MatchingAddress | None:
    """The matching part of an asset's data address, or None for ordinary data."""
    matching = address.get("matching")
    if not isinstance(matching, Mapping):
        return None
    return MatchingAddress(str(matching["column"]), Kind(str(matching["kind"])))


class WorkersUnavailableError(Exception):
    """The PSI worker processes cannot be started here (the callers answer a typed 503)."""


class SharedWorkers:
    """One pool of PSI worker processes per connector, started at the first run (starting it
    costs about a second a process), closed with the app."""

    def __init__(self, processes: int) -> None:
        self.processes = processes or None
        self._lock = threading.Lock()
        self._workers: Workers | None = None

    def __call__(self) -> Workers:
        with self._lock:
            if self._workers is None:
                try:
                    self._workers = Workers(self.processes)
                except Exception as error:
                    # whatever the reason (no memory, no processes, a daemonic parent, a
                    # worker that died loading the library), a run is refused, not a 500
                    log.exception("PSI workers cannot be started")
                    raise WorkersUnavailableError(repr(error)) from error
            return self._workers

    def close(self) -> None:
        """Stop the pool (the app stops, or a worker died: the next run starts a new one)."""
        with self._lock:
            if self._workers is not None:
                self._workers.close()
                self._workers = None


@dataclass(frozen=True)
class _Reading:
    fingerprint: tuple[int, ...] | None
    """A file's (device, inode, size, modification time); None for SQL (read every time)."""
    prepared: PreparedSetup


class MatchingSets:
    """The provider's setups, per matching asset and data version."""

    def __init__(
        self,
        *,
        rules: SourceRules,
        sql_sources: Mapping[str, Engine],
        root: Path | None,
        fpr: float,
        max_client_items: int,
        audit: AuditSink,
        me: str,
        clock: Callable[[], datetime],
    ) -> None:
        self.rules = rules
        self.sql_sources = dict(sql_sources)
        self.root = root
        self.fpr = fpr
        self.max_client_items = max_client_items
        self.audit, self.me, self.clock = audit, me, clock
        self._lock = threading.Lock()
        self._asset_locks: dict[str, threading.Lock] = {}
        self._stores: dict[str, SetupStore] = {}
        self._readings: dict[str, _Reading] = {}

    def _store(self, asset_id: str) -> SetupStore:
        store = self._stores.get(asset_id)
        if store is None:
            folder = None
            if self.root is not None:
                folder = self.root / hashlib.sha256(asset_id.encode()).hexdigest()[:32]
            store = self._stores[asset_id] = SetupStore(folder)
        return store

    def _asset_lock(self, asset_id: str) -> threading.Lock:
        with self._lock:
            return self._asset_locks.setdefault(asset_id, threading.Lock())

    def current(
        self, asset_id: str, address: Mapping[str, Any], *, wait: bool = True
    ) -> PreparedSetup:
        """The setup of the asset's data as it is now: reused while the data is unchanged,
        computed (once, however many runs ask at the same time) when it changed. Blocking;
        without ``wait``, a setup being computed by another caller is refused (``503
        setup_pending``) rather than waited for."""
        matching = matching_of(address)
        if matching is None:
            raise SourceError(403, "not_a_matching_set", "this asset is not a matching set")
        lock = self._asset_lock(asset_id)
        if not lock.acquire(blocking=wait):
            raise SourceError(
                503, "setup_pending", "the matching set's setup is being computed; try again"
            )
        try:
            return self._current(asset_id, address, matching)
        finally:
            lock.release()

    def _current(
        self, asset_id: str, address: Mapping[str, Any], matching: MatchingAddress
    ) -> PreparedSetup:
        last = self._readings.get(asset_id)
        if address.get("type") == "file":
            fingerprint, normalised = self._read_file(address, matching, last)
            if normalised is None and last is not None:
                return last.prepared
        elif address.get("type") == "sql":
            fingerprint, normalised = None, self._read_sql(address, matching)
        else:
            raise SourceError(502, "source_unavailable", UNAVAILABLE)
        if normalised is None:  # pragma: no cover - only unchanged after a reading
            raise SourceError(502, "source_unavailable", UNAVAILABLE)
        if not normalised.items:
            log.warning("matching set %s holds no valid identifier", asset_id)
            raise SourceError(502, "source_unavailable", UNAVAILABLE)
        store = self._store(asset_id)
        try:
            prepared = prepare(
                store, normalised.items, fpr=self.fpr, max_client_items=self.max_client_items
            )
        except MatchingError as error:
            log.warning("matching set %s: no setup: %s", asset_id, error)
            raise SourceError(502, "source_unavailable", UNAVAILABLE) from None
        if last is None or last.prepared.offer.data_version != prepared.offer.data_version:
            store.prune(prepared.offer.data_version)
            self._prepared(asset_id, prepared, normalised)
        self._readings[asset_id] = _Reading(fingerprint, prepared)
        return prepared

    def publish(self, asset_id: str, address: Mapping[str, Any]) -> threading.Thread:
        """Compute the setup of a newly published matching set in the background (a run
        that comes first computes it itself, once)."""

        def work() -> None:
            try:
                self.current(asset_id, address)
            except SourceError as error:
                log.warning("matching set %s not prepared: %s", asset_id, error.message)

        thread = threading.Thread(target=work, name="matching-setup", daemon=True)
        thread.start()
        return thread

    def forget(self, asset_id: str) -> None:
        self._readings.pop(asset_id, None)

    def _prepared(self, asset_id: str, prepared: PreparedSetup, normalised: Normalised) -> None:
        offer = prepared.offer
        how = (
            "reused from the setup store"
            if prepared.computed_s is None
            else f"computed in {prepared.computed_s:.2f} s"
        )
        log.info("matching set %s: setup of %s ready (%s; %s)", asset_id, offer.data_version,
                 normalised.report, how)  # fmt: skip
        self.audit.record(
            AuditRecord(
                actor=self.me, action="matching set prepared", outcome=Outcome.ACCEPTED,
                occurred_at=self.clock(), subject=asset_id,
                reason=f"data version {offer.data_version}: {normalised.report}; setup "
                f"{offer.total_bytes} bytes for up to {offer.max_client_items} consumer items "
                f"at a false-positive rate of {offer.fpr:g}, {how}",
                rows_sent=len(normalised.invalid),
            )
        )  # fmt: skip

    def _read_file(
        self, address: Mapping[str, Any], matching: MatchingAddress, last: _Reading | None
    ) -> tuple[tuple[int, ...], Normalised | None]:
        try:
            handle = self.rules.open_file(str(address["path"]))
        except AddressError as error:
            log.warning("matching set refused: %s", error)
            raise SourceError(502, "source_unavailable", UNAVAILABLE) from None
        with handle:
            info = os.fstat(handle.fileno())
            fingerprint = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
            if last is not None and last.fingerprint == fingerprint:
                return fingerprint, None
            stream = io.TextIOWrapper(handle, encoding="utf-8-sig", newline="")
            try:
                return fingerprint, read_rows(
                    stream, matching.column, matching.kind, name="the matching set"
                )
            except MatchingError as error:
                log.warning("matching set unreadable: %s", error)
                raise SourceError(502, "source_unavailable", UNAVAILABLE) from None

    def _read_sql(self, address: Mapping[str, Any], matching: MatchingAddress) -> Normalised:
        engine = self.sql_sources.get(str(address["database"]))
        if engine is None:
            raise SourceError(502, "source_unavailable", "the SQL source is not configured")
        try:
            with engine.connect() as connection:
                result = connection.execution_options(stream_results=True).execute(
                    text(str(address["query"]))
                )
                names = list(result.keys())
                if matching.column not in names:
                    log.warning("matching query has no column %r", matching.column)
                    raise SourceError(502, "source_unavailable", UNAVAILABLE)
                position = names.index(matching.column)
                values = ("" if row[position] is None else str(row[position]) for row in result)
                return normalise(values, matching.kind)
        except SourceError:
            raise
        except Exception as error:
            log.warning("matching query failed: %r", error)
            raise SourceError(502, "source_unavailable", UNAVAILABLE) from None
