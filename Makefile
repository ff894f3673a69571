# Quick start: `make run` (demo data + the daily campaign run on SQLite), `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
CUSTOMERS ?= 10000
# `mypy --strict` over the pure core (the whole package is checked by plain `mypy`, see pyproject.toml)
MYPY_STRICT := campaign_engine/rulebook campaign_engine/facts campaign_engine/selection campaign_engine/policy \
	campaign_engine/rendering campaign_engine/evaluation/compiler.py campaign_engine/evaluation/explain.py \
	campaign_engine/vocabulary.py campaign_engine/errors.py campaign_engine/masking.py \
	campaign_engine/effect

.PHONY: run serve test typecheck bench clean

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
	CAMPAIGN_ENGINE_CONFIG=config/demo.yaml $(BIN)/campaign-engine rules publish --all --as demo --note "starter pack"
	$(BIN)/campaign-engine run --all
	$(BIN)/campaign-engine messages --limit 10

serve: $(VENV)/.installed
	$(BIN)/campaign-engine db upgrade
	$(BIN)/campaign-engine serve

test: $(VENV)/.installed
	$(BIN)/python -m pytest

typecheck: $(VENV)/.installed
	$(BIN)/python -m mypy
	$(BIN)/python -m mypy --strict --no-warn-unused-configs $(MYPY_STRICT)

bench: $(VENV)/.installed
	$(BIN)/python bench/run_batch.py

clean:
	rm -rf $(VENV) instance
