# Kexin: the two commands of the README.
#   make demo   create .venv, install, run the end-to-end demo on embedded defaults
#   make bench  the benchmarks under bench/ (targets of the issues; exit 1 when one is missed)
#   make test   install what the tests need (PostgreSQL from Debian's packages when missing),
#               then ruff format --check, ruff check, mypy (strict), pytest
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck pytest bench postgres clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/dataspace demo

# PostgreSQL binaries for the storage tests; the tests start and stop their own throw-away cluster.
postgres:
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		echo "PostgreSQL found: $$(ls -d /usr/lib/postgresql/*/bin | tail -n 1)"; \
	else \
		echo "installing PostgreSQL from Debian's packages"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq postgresql >/dev/null; \
	fi

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP) postgres
	KEXIN_REQUIRE_POSTGRES=1 $(BIN)/pytest

test: lint typecheck pytest

bench: $(STAMP)
	$(BIN)/python -m bench.policy_bench
	$(BIN)/python -m bench.identity_bench
	$(BIN)/python -m bench.connector_bench
	$(BIN)/python -m bench.dataplane_bench
	$(BIN)/python -m bench.contracts_bench
	$(BIN)/python -m bench.matching_bench

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache *.egg-info
