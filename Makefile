# Two commands on a fresh machine: `make run` and `make test`. Everything else is a step of theirs.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PORT ?= 8000
PYTEST_ARGS ?=

.PHONY: install browser pgbouncer services services-down migrate seed run test test-clock bench bench-smoke lint clean wheel

$(STAMP): setup.cfg pyproject.toml
	$(PY) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is needed"'
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The console's browser tests drive Debian's Chromium (Playwright comes with the dev extra; it never
# downloads a browser). Installed with apt-get when run as root; otherwise those tests are skipped
# with a message saying how to install it.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "warning: could not install chromium; the browser tests will be skipped"; \
	  else echo "note: the console's browser tests need Debian's chromium (sudo apt-get install chromium)"; fi; }

# The PgBouncer tests (tests/deploy/test_pgbouncer.py) start a private Debian pgbouncer on a free port.
# Installed with apt-get when run as root; otherwise those tests are skipped, saying how to install it.
pgbouncer:
	@command -v pgbouncer >/dev/null 2>&1 || test -x /usr/sbin/pgbouncer || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >/dev/null) \
	      || echo "warning: could not install pgbouncer; the PgBouncer tests will be skipped"; \
	  else echo "note: the PgBouncer tests need Debian's pgbouncer (sudo apt-get install pgbouncer)"; fi; }

services: install
	$(BIN)/ombaro services up

services-down: install
	$(BIN)/ombaro services down

migrate: services
	$(BIN)/ombaro migrate

seed: migrate
	$(BIN)/ombaro seed --demo

run: seed
	@echo ""
	@echo "OMBARO Ops: console http://127.0.0.1:$(PORT)/console, API http://127.0.0.1:$(PORT)/api/v1"
	@echo "            (docs /docs, health /readyz, metrics /metrics; demo logins: see the seed output above)"
	@echo ""
	PATH="$(CURDIR)/$(BIN):$$PATH" OMBARO_PORT=$(PORT) $(BIN)/honcho start -f Procfile

test: install browser pgbouncer
	$(BIN)/pytest $(PYTEST_ARGS)

# The suite with every clock moved (pytest, workers, embedded PostgreSQL and Redis under var/clock-*) by
# libfaketime: a year ahead, 18:59 UTC on a month's last day, 23:59:30 IST on 31 March (tests/moved_clock.py).
# CLOCK_SCENARIOS picks some of them; PYTEST_ARGS as for `make test`.
CLOCK_SCENARIOS ?=
test-clock: install
	$(BIN)/python -m tests.moved_clock $(CLOCK_SCENARIOS) -- $(PYTEST_ARGS)

bench: seed
	$(BIN)/python bench/api.py

# Every benchmark once at smoke scale (CI runs this after the tests): it must still run and print
# its ratio; the figures at this size mean nothing. Full-size runs and their figures: docs/benchmarks.md.
bench-smoke: seed
	$(BIN)/python bench/api.py --seconds 1 --rounds 1 --clients 2
	$(BIN)/python bench/reads.py --seconds 1 --rounds 1 --connections 4 --scale 0.02
	$(BIN)/python bench/access.py --iterations 20 --bare-iterations 2 --bookings 5000
	$(BIN)/python bench/settlements.py --payments 5000 --small 1000 --vendors 20 --history 2000
	$(BIN)/python bench/payroll.py --employees 100
	$(BIN)/python bench/dispatch.py --scale 0.01 --samples 10
	$(BIN)/python bench/locations.py --scale 0.001 --seconds 1 --clients 2 --rounds 1
	$(BIN)/python bench/campaigns.py --audience 200
	$(BIN)/python bench/console.py --rounds 2
	$(BIN)/python bench/jobs.py --smoke

# The deployable artifact (docs/deploying.md): the engine's wheel under dist/, built from a clean
# build directory (a stale build/lib would carry deleted modules into it).
wheel: install
	rm -rf build dist
	$(BIN)/python -m pip wheel --no-deps -w dist .
	rm -rf build

lint: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy

clean: services-down
	rm -rf var
