# Two commands on a fresh machine: `make run` and `make test`. Everything else is a step of theirs.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PORT ?= 8000
PYTEST_ARGS ?=

.PHONY: install services services-down migrate seed run test bench lint clean

$(STAMP): setup.cfg pyproject.toml
	$(PY) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is needed"'
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

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
	@echo "OMBARO Ops: API at http://127.0.0.1:$(PORT)/api/v1  (docs http://127.0.0.1:$(PORT)/docs, health /readyz)"
	@echo ""
	PATH="$(CURDIR)/$(BIN):$$PATH" OMBARO_PORT=$(PORT) $(BIN)/honcho start -f Procfile

test: install
	$(BIN)/pytest $(PYTEST_ARGS)

bench: seed
	$(BIN)/python bench/api.py

lint: install
	$(BIN)/ruff check .

clean: services-down
	rm -rf var
