// Compiles AnchorRegistry.sol with solc-js (the npm package `solc`, pinned in package.json) and
// prints the artifact that ledger/chain.py loads: ABI, creation and runtime bytecode, and what
// they were built with. `make contracts` writes it to AnchorRegistry.json; a test recompiles
// and compares. No compiler is downloaded: solc-js carries its own.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);
const solc = require("solc");
const here = dirname(fileURLToPath(import.meta.url));
const SOURCE = "AnchorRegistry.sol";
const CONTRACT = "AnchorRegistry";

const settings = {
  evmVersion: "paris",
  optimizer: { enabled: true, runs: 200 },
  metadata: { bytecodeHash: "none" },
  outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
};
const input = {
  language: "Solidity",
  sources: { [SOURCE]: { content: readFileSync(join(here, SOURCE), "utf8") } },
  settings,
};
const output = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (output.errors ?? []).filter((e) => e.severity === "error");
const warnings = (output.errors ?? []).filter((e) => e.severity !== "error");
if (errors.length > 0 || warnings.length > 0) {
  for (const e of [...errors, ...warnings]) process.stderr.write(e.formattedMessage + "\n");
  process.exit(1);
}
const compiled = output.contracts[SOURCE][CONTRACT];
const artifact = {
  contractName: CONTRACT,
  sourceName: SOURCE,
  compiler: { name: "solc-js", version: solc.version() },
  settings: { evmVersion: settings.evmVersion, optimizer: settings.optimizer, metadata: settings.metadata },
  abi: compiled.abi,
  bytecode: "0x" + compiled.evm.bytecode.object,
  deployedBytecode: "0x" + compiled.evm.deployedBytecode.object,
};
process.stdout.write(JSON.stringify(artifact, null, 2) + "\n");
