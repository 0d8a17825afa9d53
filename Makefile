# RadAssist developer entry points. Each target bootstraps .venv idempotently:
# the install re-runs only when pyproject.toml is newer than the stamp.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
APP_STAMP := $(VENV)/.stamp-app
TEST_STAMP := $(VENV)/.stamp-test
SAMPLE := resources/sample/chest_xr
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test lint bench model installer installer-test sample clean-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(APP_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@ $(APP_STAMP)

run: $(APP_STAMP)
	$(BIN)/radassist $(SAMPLE)

lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

test: lint
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q

bench: $(TEST_STAMP)
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean-venv:
	rm -rf $(VENV)
