"""The npm tools the ledger tests need, installed by ``make`` into ``node_modules/`` (solc-js to
compile the contract, anvil as a real EVM node), and an anvil started on a free loopback port.

Missing tools skip their tests on a developer's machine and fail them when
``KEXIN_REQUIRE_NODE_TOOLS=1`` (``make test`` and CI), as PostgreSQL does.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.loopback import free_port

ROOT = Path(__file__).resolve().parents[2]
NODE_MODULES = ROOT / "node_modules"
ANVIL = NODE_MODULES / ".bin" / "anvil"
SOLC = NODE_MODULES / "solc" / "package.json"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0


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


def _answers(url: str) -> bool:
    body = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}
    try:
        return "result" in httpx.post(url, json=body, timeout=2).json()
    except (httpx.HTTPError, ValueError):
        return False


@contextlib.contextmanager
def anvil(state: Path | None = None, *options: str) -> Iterator[str]:
    """A running anvil (its own process group); yields its URL; stopped with SIGTERM, which
    makes anvil write ``state`` before it exits, and waited for until the whole group is gone."""
    binary = require(ANVIL, "anvil")
    port = free_port()
    command = [str(binary), "--host", "127.0.0.1", "--port", str(port), "--silent"]
    if state is not None:
        command += ["--state", str(state)]
    command += options
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _answers(url):
            if process.poll() is not None:
                pytest.fail(f"anvil exited with {process.returncode} before answering")
            if time.monotonic() > deadline:
                pytest.fail(f"anvil did not answer within {START_TIMEOUT_S:.0f} s")
            time.sleep(0.1)
        yield url
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    group = process.pid
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline:
        process.poll()
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)
    process.wait(timeout=10)
