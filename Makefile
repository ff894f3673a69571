# Quick start: `make run` (demo data + the daily campaign run on SQLite), `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
CUSTOMERS ?= 10000

.PHONY: run serve test bench clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/activate
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

run: $(VENV)/.installed
	$(BIN)/campaign-engine db upgrade
	$(BIN)/campaign-engine demo-data --customers $(CUSTOMERS)
	$(BIN)/campaign-engine rules validate
	$(BIN)/campaign-engine run --all
	$(BIN)/campaign-engine messages --limit 10

serve: $(VENV)/.installed
	$(BIN)/campaign-engine db upgrade
	$(BIN)/campaign-engine serve

test: $(VENV)/.installed
	$(BIN)/python -m pytest

bench: $(VENV)/.installed
	$(BIN)/python bench/run_batch.py

clean:
	rm -rf $(VENV) instance
