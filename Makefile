# Kexin: the two commands of the README.
#   make demo   create .venv, install, run the end-to-end demo on embedded defaults
#   make bench  the benchmarks under bench/ (targets of the issues; exit 1 when one is missed)
#   make test   install what the tests need (PostgreSQL from Debian's packages when missing,
#               solc-js and anvil from npm), then ruff format --check, ruff check, mypy, pytest
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
NPM_STAMP := node_modules/.installed

.PHONY: demo test lint typecheck pytest bench postgres chromium node-tools contracts clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP) node-tools
	$(BIN)/dataspace demo

# Debian's headless Chromium, for the test that renders the docs pages in a browser.
chromium:
	@if command -v chromium >/dev/null; then \
		echo "Chromium found: $$(command -v chromium)"; \
	else \
		echo "installing Chromium from Debian's packages"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; \
	fi

# PostgreSQL binaries for the storage tests; the tests start and stop their own throw-away cluster.
postgres:
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		echo "PostgreSQL found: $$(ls -d /usr/lib/postgresql/*/bin | tail -n 1)"; \
	else \
		echo "installing PostgreSQL from Debian's packages"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq postgresql >/dev/null; \
	fi

# solc-js (compiles the ledger's anchor contract) and anvil (a real EVM node for the ledger tests
# and bench), from the npm registry into ./node_modules at the versions package-lock.json pins.
# Both packages carry their binaries; no install script runs and nothing else is downloaded.
$(NPM_STAMP): package.json package-lock.json
	@command -v npm >/dev/null || { \
		echo "installing Node.js and npm from Debian's packages"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq nodejs npm >/dev/null; }
	npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $(NPM_STAMP)

node-tools: $(NPM_STAMP)

# Recompile ledger/contracts/AnchorRegistry.sol into the committed artifact (a test compares).
contracts: $(NPM_STAMP)
	node ledger/contracts/compile.mjs > ledger/contracts/AnchorRegistry.json.new
	mv ledger/contracts/AnchorRegistry.json.new ledger/contracts/AnchorRegistry.json

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP) postgres node-tools chromium
	KEXIN_REQUIRE_POSTGRES=1 KEXIN_REQUIRE_NODE_TOOLS=1 KEXIN_REQUIRE_CHROMIUM=1 $(BIN)/pytest

test: lint typecheck pytest

bench: $(STAMP) node-tools
	$(BIN)/python -m bench.policy_bench
	$(BIN)/python -m bench.identity_bench
	$(BIN)/python -m bench.connector_bench
	$(BIN)/python -m bench.dataplane_bench
	$(BIN)/python -m bench.contracts_bench
	$(BIN)/python -m bench.ledger_bench
	$(BIN)/python -m bench.regulator_bench
	$(BIN)/python -m bench.matching_bench
	$(BIN)/python -m bench.broker_bench

clean:
	rm -rf $(VENV) node_modules .mypy_cache .ruff_cache .pytest_cache *.egg-info
