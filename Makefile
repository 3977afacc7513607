# Two commands on a fresh machine with Python 3.11 and make: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Every dependency pinned with its hashes (pip-tools); `make lock` writes both from pyproject.toml.
LOCK := requirements/dev.txt
RUNTIME_LOCK := requirements/runtime.txt
# The tests' real JavaScript clients, each an npm package installed from its lock file:
# next-auth's own session cookies (tests/js), Inngest's JS SDKs (tests/inngest-js),
# next-auth's getServerSession with the adapters' own code (tests/nextauth-db), and
# node-postgres in an app's own transaction (tests/node-pg), axe-core, which the console's
# browser tests run in Chromium (tests/axe), and puppeteer-core, which drives Firefox
# (tests/firefox).
JS_STAMPS := tests/js/node_modules/.installed tests/inngest-js/node_modules/.installed \
	tests/nextauth-db/node_modules/.installed tests/node-pg/node_modules/.installed \
	tests/axe/node_modules/.installed tests/firefox/node_modules/.installed
# Tests run in parallel processes (pytest-xdist): they wait on databases, sockets and child
# processes far more than on the two cores, so three overlap those waits.
TEST_WORKERS ?= 3

.PHONY: run test test-fast test-busy lint format docs install lock bench clean browser

# The locked set first (pip, setuptools and wheel included), then the project itself, editable,
# built with those locked tools: nothing unpinned is fetched.
# The interpreter's version, as "3.11"; a .venv made by another one is made again.
version_of = $(if $(1),$(shell $(1) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null))
ifneq ($(wildcard $(BIN)/python),)
ifneq ($(call version_of,$(BIN)/python),$(call version_of,$(PYTHON)))
$(shell rm -f $(STAMP))
endif
endif

$(STAMP): pyproject.toml $(LOCK)
	@"$(PYTHON)" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { \
		echo "Python 3.11 or newer is needed, and PYTHON=$(PYTHON) is" \
			"$$( { command -v "$(PYTHON)" >/dev/null && "$(PYTHON)" --version 2>&1 | head -n 1; } || echo not found): make PYTHON=/path/to/python3.11" >&2; \
		exit 1; }
	@if [ -x $(BIN)/python ] && [ "$(call version_of,$(BIN)/python)" != "$(call version_of,$(PYTHON))" ]; then \
		echo "$(VENV) was made by Python $(call version_of,$(BIN)/python): making it again with $(PYTHON)" >&2; \
		rm -rf $(VENV); \
	fi
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

# Without npm the tests that need these packages skip, and CI (CI set) fails instead.
%/node_modules/.installed: %/package.json %/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		cd $* && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.installed; \
	elif [ -n "$$CI" ]; then \
		echo "npm is missing: the tests with real JavaScript clients cannot run" >&2; exit 1; \
	else \
		echo "npm is missing: the tests with real JavaScript clients will skip" >&2; \
	fi

## Migrate the SQLite default (./var/service.db) and serve on http://127.0.0.1:8080
run: $(STAMP)
	$(BIN)/service db upgrade
	INNGEST_DEV=$${INNGEST_DEV-1} $(BIN)/service serve

## The whole test suite: tests/unit, tests/integration (SQLite and PostgreSQL, and MariaDB for
## the app's database sessions; the PostgreSQL and MariaDB tests skip with a reason if the
## server is absent, and fail instead with REQUIRE_POSTGRES / REQUIRE_MARIADB set; the
## hosted-database tests start private TLS clusters, MariaDB and PgBouncer from the machine's
## programs, and skip without them, or fail with REQUIRE_PGBOUNCER set) and
## tests/system (real processes; the JS clients' tests skip without node, and fail instead when
## CI is set)
test: $(STAMP) $(JS_STAMPS) browser
	$(BIN)/pytest -n $(TEST_WORKERS)

## Debian's Chromium, ChromeDriver and Firefox ESR for the console's browser tests, installed
## when missing (as root with apt-get; elsewhere those tests skip with the reason, and fail in CI)
BROWSER_PACKAGES := chromium chromium-driver firefox-esr
browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/firefox-esr ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
			--no-install-recommends $(BROWSER_PACKAGES); \
	else \
		echo "A browser is missing: install Debian's $(BROWSER_PACKAGES), or the browser tests skip" >&2; \
	fi

## The unit layer alone: no database, no sockets, no processes; seconds
test-fast: $(STAMP)
	$(BIN)/pytest tests/unit

## The whole suite three times in a row while three busy loops keep both cores busy: a test that
## depends on how fast the machine is fails here first
test-busy: $(STAMP) $(JS_STAMPS)
	@pids=""; for n in 1 2 3; do $(PYTHON) -c 'while True: pass' & pids="$$pids $$!"; done; \
	trap "kill $$pids" EXIT INT TERM; status=0; \
	for run in 1 2 3; do \
		started=$$(date +%s); $(BIN)/pytest -q -n $(TEST_WORKERS) || status=1; \
		echo "busy run $$run: $$(( $$(date +%s) - started )) s"; \
	done; exit $$status

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## Rewrite the README's configuration table from the settings' declarations (service/config/)
docs: $(STAMP)
	$(BIN)/python -m service.config.table README.md

## Benchmarks (ingest, events, relay, id_runs, lag, inline, faults, startup, app_transactions, hosted,
## store_cost, console_pages; wrk,
## pgbench, SQLite and PostgreSQL at 127.0.0.1:5432): tables on stdout, JSON in bench/results/.
## All run; the target fails if any did.
bench: $(STAMP) $(JS_STAMPS) bench/graphile/node_modules/.installed
	@status=0; for name in ingest events relay id_runs lag inline faults startup app_transactions hosted store_cost console_pages; do \
		$(BIN)/python bench/$$name.py || status=1; \
	done; exit $$status

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache *.egg-info tests/js/node_modules \
		tests/inngest-js/node_modules tests/nextauth-db/node_modules tests/node-pg/node_modules \
		tests/axe/node_modules tests/firefox/node_modules bench/graphile/node_modules test-output
