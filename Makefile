# Two commands on a fresh machine with Python 3.11 and make: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint format install bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## Migrate the SQLite default (./var/service.db) and serve on http://127.0.0.1:8080
run: $(STAMP)
	$(BIN)/service db upgrade
	INNGEST_DEV=$${INNGEST_DEV-1} $(BIN)/service serve

## The whole test suite (SQLite and PostgreSQL; PostgreSQL tests skip with a reason if absent)
test: $(STAMP)
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
bench: $(STAMP)
	@status=0; for name in ingest relay lag inline faults; do \
		$(BIN)/python bench/$$name.py || status=1; \
	done; exit $$status

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache *.egg-info
