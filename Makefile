# Everyday entry points. Each target creates .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
MARKET ?= ../shared/data/market
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install install-dev run data test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

install: $(BIN)/python  ## serving install (no torch)
	$(BIN)/pip install -q -e .

install-dev: $(BIN)/python  ## everything: serving, training (torch==2.13.0 CPU) and test tools
	$(BIN)/pip install -q -e ".[train,dev]"

# The newest model version shipped in models/ (folders are named YYYY-MM-DD-<hash>).
MODEL ?= $(shell ls -d models/*/ 2>/dev/null | xargs -n1 basename 2>/dev/null | sort | tail -n 1)

data: install  ## migrate the SQLite default, run the daily cycle on the CSV folder, activate the shipped model
	$(BIN)/deepregime db upgrade
	$(BIN)/deepregime update --source csv --path $(MARKET)
	$(if $(MODEL),$(BIN)/deepregime models activate $(MODEL),@echo "no model in models/: serving the rule engine only")

run: data  ## the main job: serve regimes from the embedded SQLite default
	MALLOC_ARENA_MAX=2 $(BIN)/deepregime serve --host $(HOST) --port $(PORT)

test: install-dev  ## the whole suite, on SQLite and PostgreSQL
	$(BIN)/pytest -n 2 -q

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: install-dev  ## every benchmark; figures in bench-results/
	mkdir -p bench-results
	$(BIN)/python benchmarks/run_all.py --out bench-results

clean:
	rm -rf $(VENV) var bench-results .pytest_cache
