"""The cores stay pure: importing ``policy`` and every protocol ``machine`` module loads no web
framework, database layer, HTTP client or chain library (STYLE.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = ("fastapi", "sqlmodel", "sqlalchemy", "httpx", "web3", "starlette", "uvicorn")


def pure_modules() -> list[str]:
    modules = [
        ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for path in sorted((ROOT / "policy").rglob("*.py"))
    ]
    modules += [
        ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for path in sorted(ROOT.glob("*/**/machine.py"))
        if ".venv" not in path.parts
    ]
    return [module.removesuffix(".__init__") for module in modules]


def test_pure_modules_load_no_io_library() -> None:
    modules = pure_modules()
    assert "policy" in modules
    script = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        f"print(','.join(sorted(m for m in {FORBIDDEN!r} if m in sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "", f"pure modules loaded: {result.stdout.strip()}"


def test_the_check_notices_a_forbidden_import() -> None:
    script = (
        "import sys, httpx\n"
        f"print(','.join(sorted(m for m in {FORBIDDEN!r} if m in sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert "httpx" in result.stdout


def _conformance_modules_after_starting(conformance: bool) -> str:
    extra = (
        "conformance_token='kit-token-0123456789', conformance_participant_id='TCK_PARTICIPANT',"
        if conformance
        else ""
    )
    script = (
        "import sys, tempfile\n"
        "from fastapi.testclient import TestClient\n"
        "from connector.app import create_app\n"
        "from connector.settings import ConnectorSettings\n"
        "folder = tempfile.mkdtemp()\n"
        "settings = ConnectorSettings(participant_id='did:web:127.0.0.1:c',\n"
        "    database_url=f'sqlite:///{folder}/c.db', key_passphrase='correct horse battery',\n"
        f"    {extra})\n"
        "with TestClient(create_app(settings)) as client:\n"
        "    client.get('/health')\n"
        "print(','.join(sorted(m for m in sys.modules if m.startswith('connector.conformance'))))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""


def test_the_conformance_extension_is_loaded_only_in_conformance_mode() -> None:
    assert _conformance_modules_after_starting(conformance=False) == ""
    assert "connector.conformance.driver" in _conformance_modules_after_starting(conformance=True)
