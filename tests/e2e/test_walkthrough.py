"""The README's walkthrough is ``docs/walkthrough.sh``, quoted verbatim, and it runs.

The script starts real processes (the authority, two connectors) on the loopback ports it
names. Where the machine allows it, the test runs the script in a network namespace of its
own (``unshare -rn``), so that other servers on this machine cannot hold its ports; otherwise
on the machine's loopback, after checking that the ports are free."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "docs" / "walkthrough.sh"
README = ROOT / "README.md"
MARKER = "<!-- docs/walkthrough.sh"
PORTS = (8282, 8181, 8191)
TIMEOUT_S = 600


def quoted_block(readme: str) -> str:
    """The ``sh`` block that follows the walkthrough's marker in the README."""
    start = readme.index(MARKER)
    found = re.compile(r"```sh\n(.*?)```", re.DOTALL).search(readme, start)
    assert found is not None, "no sh block after the walkthrough's marker"
    return found.group(1)


def test_the_readme_quotes_the_script_as_it_is() -> None:
    assert quoted_block(README.read_text("utf-8")) == SCRIPT.read_text("utf-8")


def _isolated() -> bool:
    """Whether a network namespace of our own can be had (with loopback up)."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-rn", "ip", "link", "set", "lo", "up"],
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0


def _free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_the_walkthrough_runs_and_the_bank_gets_the_file(tmp_path: Path) -> None:
    for tool in ("curl", "jq"):
        assert shutil.which(tool), f"the walkthrough needs {tool}"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("CONNECTOR_", "BROKER_", "LEDGER_", "KEXIN_"))
        or key.endswith("_KEY_SCRYPT_LOG2_N")  # the suite's cheaper key wrapping (conftest)
    }
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(ROOT)  # this tree's code, whatever the venv was installed from
    command = ["sh", str(SCRIPT)]
    if _isolated():
        command = ["unshare", "-rn", "sh", "-c", 'ip link set lo up && exec "$@"', "-", *command]
    else:
        busy = [port for port in PORTS if not _free(port)]
        assert not busy, f"the walkthrough's ports {busy} are taken on this machine"
    done = subprocess.run(
        command,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
        start_new_session=True,
    )
    logs = "\n".join(
        f"--- {log.name}\n{log.read_text('utf-8', 'replace')[-3000:]}"
        for log in sorted(tmp_path.glob("*.log"))
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{logs}"
    assert "the bank has the firm list" in done.stdout
    assert (tmp_path / "firms.csv").read_bytes() == (tmp_path / "data" / "firms.csv").read_bytes()
    # the loud warning of the local-trial profile, on every service it started
    for log in ("authority.log", "bureau.log", "bank.log"):
        assert "KEXIN_PROFILE=local IS ON" in (tmp_path / log).read_text("utf-8")
    # the trap stopped the services: nothing of the trial is left listening
    if command[0] != "unshare":
        assert all(_free(port) for port in PORTS)


@pytest.mark.parametrize("port", PORTS)
def test_the_ports_the_script_names_are_those_the_test_knows(port: int) -> None:
    assert f"{port}" in SCRIPT.read_text("utf-8")
