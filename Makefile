# Omniclear: every target does its own idempotent set-up first.
#   make demo   the end-to-end scenario on a fresh local devnet (exit 0 iff every chain reconciles)
#   make test   every test: forge (unit, fuzz, invariant) then pytest (unit + real anvil chains)

SHELL   := /bin/bash
PYTHON  ?= python3
VENV    := .venv
PY      := $(VENV)/bin/python
STAMPS  := .stamps
FORGE   := node_modules/.bin/forge
PYTEST_ARGS ?=

.PHONY: setup demo test test-contracts test-python bench devnet-up devnet-down clean

setup: $(STAMPS)/venv $(STAMPS)/npm $(STAMPS)/forge

$(STAMPS)/venv: pyproject.toml
	@mkdir -p $(STAMPS)
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 is required"'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	@touch $@

$(STAMPS)/npm: package.json package-lock.json
	@mkdir -p $(STAMPS)
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

$(STAMPS)/forge: $(STAMPS)/npm $(shell find contracts/src contracts/test -name '*.sol' 2>/dev/null) contracts/foundry.toml
	cd contracts && ../$(FORGE) build
	@touch $@

demo: setup
	$(VENV)/bin/aggregator demo --report reports/demo.json

test: test-contracts test-python

test-contracts: setup
	cd contracts && FOUNDRY_PROFILE=ci ../$(FORGE) test

# pytest exits 5 when it collects no test: that is not a pass, and says so.
test-python: setup
	@$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; fi; exit $$rc

bench: setup
	@for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

devnet-up: setup
	$(VENV)/bin/aggregator devnet up

devnet-down:
	$(VENV)/bin/aggregator devnet down

clean:
	rm -rf $(STAMPS) contracts/out contracts/cache .pytest_cache reports
