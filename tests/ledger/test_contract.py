"""The committed contract artifact is what solc-js (the pinned npm package) makes of the source,
for the EVM version every target chain runs (paris: py-evm, anvil, consortium forks)."""

from __future__ import annotations

import json
import subprocess

from ledger.chain import load_artifact
from tests.ledger import nodetools

CONTRACTS = nodetools.ROOT / "ledger" / "contracts"


def test_the_committed_artifact_is_what_solc_js_compiles() -> None:
    nodetools.require(nodetools.SOLC, "solc-js")
    result = subprocess.run(
        [nodetools.node(), str(CONTRACTS / "compile.mjs")],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == load_artifact(), "run `make contracts` and commit"


def test_the_artifact_is_built_with_the_pinned_compiler_for_paris() -> None:
    artifact = load_artifact()
    pinned = json.loads((nodetools.ROOT / "package.json").read_text())["devDependencies"]["solc"]
    assert artifact["compiler"]["version"].startswith(f"{pinned}+commit.")
    assert artifact["settings"]["evmVersion"] == "paris"
    source = (CONTRACTS / "AnchorRegistry.sol").read_text()
    assert f"pragma solidity {pinned};" in source
    # paris has no PUSH0 (0x5f, Shanghai): a 0x5f opcode would not run on older chains.
    assert not _has_opcode(bytes.fromhex(artifact["deployedBytecode"][2:]), 0x5F)


def _has_opcode(code: bytes, opcode: int) -> bool:
    position = 0
    while position < len(code):
        byte = code[position]
        if byte == opcode:
            return True
        position += 1 + (byte - 0x5F if 0x60 <= byte <= 0x7F else 0)
    return False


def test_the_abi_has_what_the_adapter_calls() -> None:
    names = {entry.get("name") for entry in load_artifact()["abi"]}
    assert {"register", "suspend", "reinstate", "anchor", "anchorCount", "anchorAt"} <= names
    assert {"Anchored", "ParticipantRegistered", "ParticipantSuspended"} <= names
