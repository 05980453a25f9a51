"""Server setups, precomputed once per *data version* and reused for every run until the data
changes.

The data version is the SHA-256 of the normalised set (distinct items, sorted, one per line):
the same set gives the same version on any machine, any change gives another. Each version has
its own key, created once and persisted (``0600``) so that a setup stays valid across restarts
and every worker process (and every process sharing the directory) uses the same one
(``CreateFromKey``). A new version gets a new key: setups of two versions cannot be compared.

A run is bound to one :class:`PreparedSetup`; the machines refuse a run built against any other
(``matching.machine``). What this does not do: decide *when* the data changed (the caller
computes the version of what it reads) or delete old versions unless asked (:meth:`prune`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from matching import psi
from matching.errors import MatchingError, Reason
from matching.machine import SetupOffer, digest

_VERSION_PREFIX: Final = "sha256:"


def data_version(items: Iterable[str]) -> str:
    """The version of a normalised set: SHA-256 over its distinct items, sorted, one a line."""
    hasher = hashlib.sha256()
    for item in sorted(set(items)):
        if "\n" in item:
            raise MatchingError(Reason.INVALID_PARAMETER, "a normalised item has no line break")
        hasher.update(item.encode())
        hasher.update(b"\n")
    return _VERSION_PREFIX + hasher.hexdigest()


@dataclass(frozen=True)
class PreparedSetup:
    """A server setup with the key it was made with (the key never leaves the server)."""

    offer: SetupOffer
    setup: bytes = field(repr=False)
    key: bytes = field(repr=False)
    computed_s: float | None = None
    """How long the setup took to compute here; None when it was read from the store (made
    before, by this process or one before it: a restart reuses it)."""


def _parameters(fpr: float, max_client_items: int) -> str:
    return f"fpr{fpr!r}-max{max_client_items}"


class SetupStore:
    """Keys and setups by data version: in memory, and under ``root`` when one is given."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root
        self._keys: dict[str, bytes] = {}
        self._setups: dict[tuple[str, str], PreparedSetup] = {}

    def _folder(self, version: str) -> Path | None:
        if self.root is None:
            return None
        if not version.startswith(_VERSION_PREFIX) or len(version) != 71:
            raise MatchingError(Reason.INVALID_PARAMETER, f"not a data version: {version[:80]}")
        return self.root / version.removeprefix(_VERSION_PREFIX)

    def key(self, version: str) -> bytes:
        """The key of ``version``: the persisted one, or a new one persisted now. When two
        processes race, the first to link its file wins and both use that key."""
        if version in self._keys:
            return self._keys[version]
        folder = self._folder(version)
        if folder is None:
            key = psi.new_key()
        else:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / "key"
            if not path.exists():
                fd, temporary = tempfile.mkstemp(dir=folder, prefix=".key-")
                try:
                    os.fchmod(fd, 0o600)
                    os.write(fd, psi.new_key())
                    os.fsync(fd)
                    os.close(fd)
                    with contextlib.suppress(FileExistsError):
                        os.link(temporary, path)
                finally:
                    os.unlink(temporary)
            key = psi.check_key(path.read_bytes())
        self._keys[version] = key
        return key

    def load(self, version: str, fpr: float, max_client_items: int) -> PreparedSetup | None:
        parameters = _parameters(fpr, max_client_items)
        cached = self._setups.get((version, parameters))
        if cached is not None:
            return cached
        folder = self._folder(version)
        if folder is None or not (folder / f"{parameters}.setup").exists():
            return None
        try:
            setup = (folder / f"{parameters}.setup").read_bytes()
            meta = json.loads((folder / f"{parameters}.json").read_text())
            offer = SetupOffer(
                version, str(meta["setupDigest"]), int(meta["serverItems"]),
                max_client_items, fpr, len(setup),
            )  # fmt: skip
        except (OSError, ValueError, KeyError, TypeError):
            return None  # unreadable: computed again
        if digest(setup) != offer.setup_digest:
            return None  # damaged: computed again
        prepared = PreparedSetup(offer, setup, self.key(version))
        self._setups[version, parameters] = prepared
        return prepared

    def save(self, prepared: PreparedSetup) -> None:
        offer = prepared.offer
        parameters = _parameters(offer.fpr, offer.max_client_items)
        self._setups[offer.data_version, parameters] = prepared
        folder = self._folder(offer.data_version)
        if folder is None:
            return
        meta = {"setupDigest": offer.setup_digest, "serverItems": offer.server_items}
        for name, data in (
            (f"{parameters}.setup", prepared.setup),
            (f"{parameters}.json", json.dumps(meta).encode()),
        ):
            fd, temporary = tempfile.mkstemp(dir=folder, prefix=".part-")
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(temporary, folder / name)

    def prune(self, keep: str) -> None:
        """Forget every version but ``keep`` (keys included)."""
        self._keys = {v: k for v, k in self._keys.items() if v == keep}
        self._setups = {k: s for k, s in self._setups.items() if k[0] == keep}
        if self.root is None or not self.root.exists():
            return
        kept = keep.removeprefix(_VERSION_PREFIX)
        for folder in self.root.iterdir():
            if folder.is_dir() and folder.name != kept:
                shutil.rmtree(folder)


def prepare(
    store: SetupStore, items: Sequence[str], *, fpr: float, max_client_items: int
) -> PreparedSetup:
    """The setup of ``items`` (normalised identifiers): reused when this version was already
    prepared with these parameters, computed (and stored) otherwise."""
    psi.check_fpr(fpr)
    distinct = sorted(set(items))
    version = data_version(distinct)
    found = store.load(version, fpr, max_client_items)
    if found is not None:
        return found
    key = store.key(version)
    started = time.perf_counter()
    setup = psi.create_setup(key, distinct, fpr=fpr, max_client_items=max_client_items)
    psi.read_setup(setup)
    offer = SetupOffer(version, digest(setup), len(distinct), max_client_items, fpr, len(setup))
    prepared = PreparedSetup(offer, setup, key, time.perf_counter() - started)
    store.save(prepared)
    return prepared
