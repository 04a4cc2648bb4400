# loadbay: `make run` starts a server with a demo account; `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
# `make test` runs the suite in this many processes (pytest-xdist, a test module to each):
# on 2 CPUs, 2 took 12.6 min, 3 took 13.2 and 1 took 18.8.
TEST_PROCESSES ?= 2

.PHONY: run test lint typecheck check install dev clean bench soak screenshots

$(BIN)/loadbay: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.dev: $(BIN)/loadbay
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/loadbay

dev: $(VENV)/.dev

run: install
	$(BIN)/loadbay serve --host $(HOST) --port $(PORT) --demo

test: dev
	$(BIN)/python -m pytest -n $(TEST_PROCESSES) --dist loadfile

lint: dev
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts

typecheck: dev
	$(BIN)/mypy

check: lint typecheck test

# A benchmark, not a test: loadbay end to end vs the database's own bulk load vs a naive
# importer, on SQLite and PostgreSQL (see bench/README.md; BENCH_ROWS=20000 for a quick run).
bench: dev
	$(BIN)/python -m bench.run

# A soak, not a test: workers and the server SIGKILLed at random (200 times) while batches run,
# on SQLite and PostgreSQL; nothing lost, doubled or unprocessed (see bench/soak.py for SOAK_*).
soak: dev
	$(BIN)/python -m bench.soak

# The dashboard's main pages photographed into docs/screenshots/ (Debian's chromium).
screenshots: dev
	$(BIN)/python scripts/screenshots.py

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
