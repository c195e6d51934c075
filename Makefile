# Everyday entry points. Each target creates .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
MARKET ?= ../shared/data/market
HOST ?= 127.0.0.1
PORT ?= 8000
# Quoted in a variable: a literal comma inside $(call ...) would split its arguments.
DEV_EXTRAS := ".[train,dev]"

.PHONY: install install-dev run data test lint bench clean

# Each step prints what it does and how long it took. Installs are skipped while
# pyproject.toml is unchanged (a stamp file in the virtualenv records the last one).
step = @printf '\n==> %s\n' $(1)
timed = @start=$$(date +%s); $(1) && printf '    done in %ss\n' "$$(( $$(date +%s) - start ))"

$(BIN)/python:
	$(call step,"creating the virtualenv $(VENV)")
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed-serving: pyproject.toml | $(BIN)/python
	$(call step,"installing the service into $(VENV) (about 1-2 minutes the first time; skipped until pyproject.toml changes)")
	$(call timed,$(BIN)/pip install -q -e .)
	@touch $@

$(VENV)/.installed-dev: pyproject.toml clients/python/pyproject.toml | $(BIN)/python
	$(call step,"installing the service with the train and dev extras (torch CPU; several minutes the first time; skipped until pyproject.toml changes)")
	$(call timed,$(BIN)/pip install -q -e $(DEV_EXTRAS))
	$(BIN)/pip install -q -e clients/python
	@touch $@ $(VENV)/.installed-serving

install: $(VENV)/.installed-serving  ## serving install (no torch)

install-dev: $(VENV)/.installed-dev  ## everything: serving, training (torch==2.13.0 CPU) and test tools

# The newest model version shipped in models/ (folders are named YYYY-MM-DD-<hash>).
MODEL ?= $(shell ls -d models/*/ 2>/dev/null | xargs -n1 basename 2>/dev/null | sort | tail -n 1)

data: install  ## migrate the SQLite default, run the daily cycle on the CSV folder, activate the shipped model
	$(call step,"migrating the database (./var/deepregime.db)")
	$(call timed,$(BIN)/deepregime db upgrade)
	$(call step,"daily cycle on $(MARKET): ingest - features - regimes - model - publish (about 40 s the first time; a rerun finds nothing new in seconds)")
	$(call timed,$(BIN)/deepregime update --source csv --path $(MARKET))
	$(call step,$(if $(MODEL),"activating the shipped model $(MODEL) (scores the history once; about 20 s)","no model in models/: serving the rule engine only"))
	$(if $(MODEL),$(call timed,$(BIN)/deepregime models activate $(MODEL)))

run: data  ## the main job: serve regimes from the embedded SQLite default
	$(call step,"serving on http://$(HOST):$(PORT): the dashboard at /dashboard - docs at /docs - the answer at /regime/today (Ctrl-C stops)")
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
	rm -rf $(VENV) var bench-results .pytest_cache test-artifacts
