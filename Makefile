# Two commands on a fresh machine with Python 3.11 and make: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Every dependency pinned with its hashes (pip-tools); `make lock` writes both from pyproject.toml.
LOCK := requirements/dev.txt
RUNTIME_LOCK := requirements/runtime.txt

.PHONY: run test lint format install lock bench clean

# The locked set first (pip, setuptools and wheel included), then the project itself, editable,
# built with those locked tools: nothing unpinned is fetched.
$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

## Re-resolve the lock files from pyproject.toml's ranges, keeping pins that still fit
## (`make lock UPGRADE=1`: the newest versions the ranges allow). The image's runtime lock
## first; the development lock is constrained by it, so both pin the same runtime versions.
PIP_COMPILE = CUSTOM_COMPILE_COMMAND='make lock' $(BIN)/pip-compile --quiet --generate-hashes \
	--allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links $(if $(UPGRADE),--upgrade)
lock: $(STAMP)
	$(PIP_COMPILE) --build-deps-for wheel -o $(RUNTIME_LOCK) pyproject.toml
	$(PIP_COMPILE) --build-deps-for editable --extra dev -c $(RUNTIME_LOCK) -o $(LOCK) pyproject.toml

# The official JavaScript clients the tests drive (tests/js): reinstalled when its lock changes.
# Without npm the tests that need them skip, and fail in CI.
JS_STAMP := tests/js/node_modules/.package-lock.json
$(JS_STAMP): tests/js/package.json tests/js/package-lock.json
	@if command -v npm >/dev/null; then \
		cd tests/js && npm ci --ignore-scripts --no-audit --no-fund && touch node_modules/.package-lock.json; \
	else echo "npm not found: the tests with next-auth's own cookies will skip (fail in CI)"; fi

## Migrate the SQLite default (./var/service.db) and serve on http://127.0.0.1:8080
run: $(STAMP)
	$(BIN)/service db upgrade
	INNGEST_DEV=$${INNGEST_DEV-1} $(BIN)/service serve

## The whole test suite (SQLite and PostgreSQL; PostgreSQL tests skip with a reason if absent)
test: $(STAMP) $(JS_STAMP)
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## Benchmarks (ingest, relay, lag, inline, faults; wrk, SQLite and PostgreSQL at 127.0.0.1:5432):
## tables on stdout, JSON in bench/results/. All five run; the target fails if any did.
bench: $(STAMP) $(JS_STAMP)
	@status=0; for name in ingest relay lag inline faults; do \
		$(BIN)/python bench/$$name.py || status=1; \
	done; exit $$status

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache *.egg-info tests/js/node_modules
