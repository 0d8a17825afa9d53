# RadAssist developer entry points. Each target bootstraps .venv idempotently:
# the install re-runs only when pyproject.toml is newer than the stamp.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
APP_STAMP := $(VENV)/.stamp-app
TEST_STAMP := $(VENV)/.stamp-test
INSTALLER_STAMP := $(VENV)/.stamp-installer
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

$(INSTALLER_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[installer]'
	touch $@ $(APP_STAMP)

# The desktop bundle: dist/radassist/ (PyInstaller, one folder) and, on Linux, its desktop
# entry, icons and dist/radassist-<version>-linux-x86_64.tar.gz. CPU_ONLY=1 leaves out Triton
# and the CUDA libraries PyTorch only loads for a GPU (-cpu.tar.gz); see installer/README.md.
CPU_ONLY_SET := $(filter-out 0,$(CPU_ONLY))
BUNDLE_TARBALLS := dist/radassist-*-linux-$(shell uname -m)$(if $(CPU_ONLY_SET),-cpu).tar.gz

installer: $(INSTALLER_STAMP)
	CPU_ONLY=$(CPU_ONLY_SET) PYTHON=$(BIN)/python installer/build.sh

# Runs the built bundle (the tarball of the same CPU_ONLY flavour; built first if missing) in
# a clean environment outside the repository: installer/smoke_test.sh.
installer-test: $(APP_STAMP)
	@ls $(BUNDLE_TARBALLS) >/dev/null 2>&1 || $(MAKE) installer
	CPU_ONLY=$(CPU_ONLY_SET) PYTHON=$(BIN)/python installer/smoke_test.sh

bench: $(TEST_STAMP)
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean-venv:
	rm -rf $(VENV)
