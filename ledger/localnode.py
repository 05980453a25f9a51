"""The embedded chain: a local EVM node (anvil, from the npm package ``@foundry-rs/anvil`` that
``make node-tools`` installs into ``node_modules/``) run as a child process with a state file, so
that what was anchored before a stop is still on chain after the next start.

anvil writes its whole state (accounts, contracts, blocks) to the file when it is stopped with
SIGTERM and every ``dump_interval_s`` while it runs, and loads it when it starts. A stop by
SIGKILL or a power cut loses up to the last interval: an anchor a connector recorded in that
window is then missing on chain, and nothing repairs that (the connector does not re-check its
recorded anchors; its next anchor names a root the contract no longer holds and would be refused;
untested).
A development chain is no production ledger: production points ``*_CHAIN_URL`` at the
consortium's nodes.

No web3 here: the node is spoken to through :mod:`ledger.chain`; this module only starts,
watches and stops the process.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import httpx

START_TIMEOUT_S: Final = 60.0
STOP_TIMEOUT_S: Final = 30.0
DUMP_INTERVAL_S: Final = 1
PROBE_TIMEOUT_S: Final = 2.0
REPOSITORY_ANVIL: Final = Path(__file__).resolve().parents[1] / "node_modules" / ".bin" / "anvil"


class LocalNodeError(Exception):
    """The local node could not be found, started or stopped; the message says why."""


def find_anvil(explicit: Path | None = None) -> Path:
    """``explicit``, else the checkout's ``node_modules/.bin/anvil``, else ``anvil`` on PATH."""
    if explicit is not None:
        if not explicit.is_file():
            raise LocalNodeError(f"anvil not found at {explicit}")
        return explicit
    if REPOSITORY_ANVIL.is_file():
        return REPOSITORY_ANVIL
    found = shutil.which("anvil")
    if found is None:
        raise LocalNodeError(
            "anvil not found (`make node-tools` installs it from the npm package"
            " @foundry-rs/anvil into node_modules/)"
        )
    return Path(found)


def answers(url: str) -> bool:
    """Whether a JSON-RPC node at ``url`` answers ``eth_chainId``."""
    body = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}
    try:
        answer = httpx.post(url, json=body, timeout=PROBE_TIMEOUT_S).json()
    except (httpx.HTTPError, ValueError):
        return False
    return isinstance(answer, dict) and "result" in answer


@contextlib.contextmanager
def local_node(
    port: int,
    state: Path | None = None,
    *options: str,
    anvil: Path | None = None,
    host: str = "127.0.0.1",
    dump_interval_s: int = DUMP_INTERVAL_S,
) -> Iterator[str]:
    """Run anvil on ``host:port`` (its own process group), loading ``state`` when the file
    exists and writing it every ``dump_interval_s`` and on the stop; yield its JSON-RPC URL
    once it answers. ``options`` go to anvil as they are (``--no-mining``, …). On leaving, the
    node is stopped with SIGTERM and waited for until its whole group is gone."""
    command = [str(find_anvil(anvil)), "--host", host, "--port", str(port), "--silent"]
    if state is not None:
        command += ["--state", str(state), "--state-interval", str(dump_interval_s)]
    command += options
    with tempfile.TemporaryFile() as errors:
        try:
            process = subprocess.Popen(  # noqa: S603 - our binary, our arguments, no shell
                command, stdout=subprocess.DEVNULL, stderr=errors, start_new_session=True
            )
        except OSError as error:
            raise LocalNodeError(f"anvil could not be started: {error}") from error
        url = f"http://{host}:{port}"
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while not answers(url):
                if process.poll() is not None:
                    errors.seek(0)
                    said = errors.read(4096).decode(errors="replace").strip()
                    raise LocalNodeError(f"anvil exited with {process.returncode}: {said}")
                if time.monotonic() > deadline:
                    raise LocalNodeError(f"anvil did not answer within {START_TIMEOUT_S:.0f} s")
                time.sleep(0.1)
            yield url
        finally:
            stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the node's process group (anvil writes its state), SIGKILL after
    ``STOP_TIMEOUT_S``; returns once the group is gone."""
    group = process.pid
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline:
        process.poll()
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
    process.wait(timeout=10)
