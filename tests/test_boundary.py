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
