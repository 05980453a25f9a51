"""The ledger is a library like ``policy``: its event, hashing, Merkle, batching and signing
modules load no web framework, database layer, chain library or connector; web3 is imported in
one module of the whole project, ``ledger/chain.py`` (STYLE.md)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = [
    "ledger.events", "ledger.digests", "ledger.canonical", "ledger.hashchain", "ledger.merkle",
    "ledger.machine", "ledger.batches", "ledger.ingest", "ledger.messages",
    "ledger.reconciliation", "ledger.reports",
]  # fmt: skip
SERVICE_LIBRARY = ["ledger.archive", "ledger.proofs", "ledger.inspection", "ledger.settings"]
"""The regulator's service apart from its web files (``app``, ``routes``): storage and the chain,
no web framework."""
WEB = ("fastapi", "starlette", "uvicorn")
FORBIDDEN = (
    "fastapi", "starlette", "uvicorn", "httpx", "sqlalchemy", "sqlmodel", "web3", "connector",
    "broker",
)  # fmt: skip
PACKAGES = (
    "dataspace", "connector", "broker", "identity", "policy", "ledger", "matching", "storage",
    "service", "bench",
)  # fmt: skip
WEB3_IMPORT = re.compile(r"^\s*(?:import web3|from web3[\s.])", re.MULTILINE)


def loaded_after_importing(modules: list[str]) -> list[str]:
    script = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        f"print(','.join(sorted(m for m in {FORBIDDEN!r} if m in sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return [m for m in result.stdout.strip().split(",") if m]


def test_the_ledger_library_loads_no_io_library() -> None:
    assert loaded_after_importing(LIBRARY) == []


def test_the_services_storage_and_proofs_load_no_web_framework() -> None:
    assert [m for m in loaded_after_importing(SERVICE_LIBRARY) if m in WEB] == []


def test_the_check_sees_the_routes_load_the_web_framework() -> None:
    assert "fastapi" in loaded_after_importing(["ledger.routes"])


def test_the_check_sees_the_chain_adapter_load_web3() -> None:
    assert "web3" in loaded_after_importing(["ledger.chain"])


def test_web3_is_imported_in_one_module() -> None:
    importers = sorted(
        str(path.relative_to(ROOT))
        for folder in PACKAGES
        for path in (ROOT / folder).rglob("*.py")
        if WEB3_IMPORT.search(path.read_text(encoding="utf-8"))
    )
    assert importers == ["ledger/chain.py"]
