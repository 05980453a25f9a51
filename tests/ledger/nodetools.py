"""The npm tools the ledger tests need, installed by ``make`` into ``node_modules/`` (solc-js to
compile the contract, anvil as a real EVM node), and an anvil started on a free loopback port.

Missing tools skip their tests on a developer's machine and fail them when
``KEXIN_REQUIRE_NODE_TOOLS=1`` (``make test`` and CI), as PostgreSQL does.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger import localnode
from tests.loopback import free_port

ROOT = Path(__file__).resolve().parents[2]
NODE_MODULES = ROOT / "node_modules"
ANVIL = NODE_MODULES / ".bin" / "anvil"
SOLC = NODE_MODULES / "solc" / "package.json"


def require(path: Path, what: str) -> Path:
    if path.exists():
        return path
    message = f"{what} not found at {path.relative_to(ROOT)} (`make node-tools` installs it)"
    if os.environ.get("KEXIN_REQUIRE_NODE_TOOLS") == "1":
        pytest.fail(message)
    pytest.skip(message)


def node() -> str:
    found = shutil.which("node")
    if found is None:
        if os.environ.get("KEXIN_REQUIRE_NODE_TOOLS") == "1":
            pytest.fail("node not found (`make node-tools` installs it)")
        pytest.skip("node not found")
    return found


@contextlib.contextmanager
def anvil(state: Path | None = None, *options: str) -> Iterator[str]:
    """A running anvil on a free loopback port (``ledger.localnode``, as the demo runs it);
    yields its URL; stopped with SIGTERM, which makes anvil write ``state`` before it exits."""
    binary = require(ANVIL, "anvil")
    try:
        with localnode.local_node(free_port(), state, *options, anvil=binary) as url:
            yield url
    except localnode.LocalNodeError as error:
        pytest.fail(str(error))
