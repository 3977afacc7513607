# Two commands on a fresh machine with Python 3.11 and make: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Inngest's JS SDKs, the tests' real clients of the Event API: installed from their lock file.
JS_PACKAGE := tests/inngest-js
JS_STAMP := $(JS_PACKAGE)/node_modules/.installed

.PHONY: run test lint format install bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

$(JS_STAMP): $(JS_PACKAGE)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		cd $(JS_PACKAGE) && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.installed; \
	elif [ -n "$$CI" ]; then \
		echo "npm is missing: the JS SDK tests cannot run" >&2; exit 1; \
	else \
		echo "npm is missing: the JS SDK tests will skip" >&2; \
	fi

## Migrate the SQLite default (./var/service.db) and serve on http://127.0.0.1:8080
run: $(STAMP)
	$(BIN)/service db upgrade
	INNGEST_DEV=$${INNGEST_DEV-1} $(BIN)/service serve

## The whole test suite (SQLite and PostgreSQL; PostgreSQL tests skip with a reason if absent;
## the JS SDK tests skip without node, and fail instead when CI is set)
test: $(STAMP) $(JS_STAMP)
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## Benchmarks (ingest, events, relay, lag, inline; wrk, SQLite and PostgreSQL at 127.0.0.1:5432):
## tables on stdout, JSON in bench/results/. All of them run; the target fails if any did.
bench: $(STAMP)
	@status=0; for name in ingest events relay lag inline; do \
		$(BIN)/python bench/$$name.py || status=1; \
	done; exit $$status

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache *.egg-info $(JS_PACKAGE)/node_modules
