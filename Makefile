# RadAssist developer entry points. Each target bootstraps .venv idempotently:
# the install re-runs only when pyproject.toml is newer than the stamp.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
APP_STAMP := $(VENV)/.stamp-app
TEST_STAMP := $(VENV)/.stamp-test
INSTALLER_STAMP := $(VENV)/.stamp-installer
SAMPLE := resources/sample
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test lint bench model model-demo model-ct installer installer-test sample clean-venv fuzz

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

# The hostile-file corpus in full (tests/hostile: SEEDS files per class through inspect and
# predict under an address-space limit); `make test` runs one file per class.
SEEDS ?= 4
fuzz: $(TEST_STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m tests.hostile.fuzz --seeds $(SEEDS)

$(INSTALLER_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[installer]'
	touch $@ $(APP_STAMP)

# The desktop bundle: dist/radassist/ (PyInstaller, one folder) and, on Linux, its desktop
# entry, icons and dist/radassist-<version>-linux-x86_64.tar.gz. CPU_ONLY=1 builds the CPU
# flavour (-cpu.tar.gz): radassist only, on ONNX Runtime, without PyTorch, MONAI or the training
# tools; see installer/README.md.
CPU_ONLY_SET := $(filter-out 0,$(CPU_ONLY))
BUNDLE_TARBALLS := dist/radassist-*-linux-$(shell uname -m)$(if $(CPU_ONLY_SET),-cpu).tar.gz

installer: $(INSTALLER_STAMP)
	CPU_ONLY=$(CPU_ONLY_SET) PYTHON=$(BIN)/python installer/build.sh

# Runs the built bundle (the tarball of the same CPU_ONLY flavour; built first if missing) in
# a clean environment outside the repository: installer/smoke_test.sh.
installer-test: $(APP_STAMP)
	@ls $(BUNDLE_TARBALLS) >/dev/null 2>&1 || $(MAKE) installer
	CPU_ONLY=$(CPU_ONLY_SET) PYTHON=$(BIN)/python installer/smoke_test.sh

# Regenerates the bundled sample studies in resources/sample/ from the seeded phantoms.
sample: $(APP_STAMP)
	$(BIN)/python resources/make_samples.py

bench: $(TEST_STAMP)
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

# The bundled demo model: resources/models/$(MODEL_NAME).safetensors and its model card (.md),
# trained on synthetic phantoms (make-demo-data, fixed seed) with training/configs/demo.yaml.
# About 25 minutes on a 2-core CPU; data, run folder and test metrics stay in build/model/.
MODEL_NAME := radassist-demo-lite0
MODEL_BUILD := build/model
MODEL_DEMO_N := 1200
MODEL_DEMO_SEED := 0

# `make model` builds every bundled model: the chest classifier (model-demo) and the CT nodule
# segmentation model (model-ct).
model: model-demo model-ct

model-demo: $(APP_STAMP)
	@set -e; start=$$(date +%s); rm -rf $(MODEL_BUILD); \
	$(BIN)/radassist-train make-demo-data $(MODEL_BUILD)/demo --n $(MODEL_DEMO_N) \
		--seed $(MODEL_DEMO_SEED) --quiet; \
	$(BIN)/radassist-train fit --config training/configs/demo.yaml \
		--data $(MODEL_BUILD)/demo/manifest.csv --out $(MODEL_BUILD)/run; \
	$(BIN)/radassist-train evaluate --model $(MODEL_BUILD)/run/model.safetensors \
		--data $(MODEL_BUILD)/demo/manifest.csv --split test --json $(MODEL_BUILD)/test_metrics.json; \
	mkdir -p resources/models; \
	cp $(MODEL_BUILD)/run/model.safetensors resources/models/$(MODEL_NAME).safetensors.tmp; \
	cp $(MODEL_BUILD)/run/model_card.md resources/models/$(MODEL_NAME).md.tmp; \
	mv resources/models/$(MODEL_NAME).safetensors.tmp resources/models/$(MODEL_NAME).safetensors; \
	mv resources/models/$(MODEL_NAME).md.tmp resources/models/$(MODEL_NAME).md; \
	echo "make model-demo: $$(( $$(date +%s) - start )) s; wrote resources/models/$(MODEL_NAME).safetensors and .md"

# The bundled CT nodule segmentation model: resources/models/$(CT_MODEL_NAME).safetensors and
# its card, trained on seeded CT phantom series (make-demo-data --ct) with
# training/configs/ct_nodule.yaml. No ONNX graph in it (38 MB with one, 19 MB without): the
# installer stores it in the bundle's copy. About 10 minutes on a 2-core CPU (613 s); data, run folder
# and metrics (fit's own test split: metrics.json) stay in build/model-ct/.
CT_MODEL_NAME := radassist-ct-nodule-lite0
CT_MODEL_BUILD := build/model-ct
CT_MODEL_DEMO_N := 40
CT_MODEL_DEMO_SEED := 0

model-ct: $(APP_STAMP)
	@set -e; start=$$(date +%s); rm -rf $(CT_MODEL_BUILD); \
	$(BIN)/radassist-train make-demo-data $(CT_MODEL_BUILD)/demo --ct --n $(CT_MODEL_DEMO_N) \
		--max-empty-slices 6 --seed $(CT_MODEL_DEMO_SEED) --quiet; \
	$(BIN)/radassist-train fit --config training/configs/ct_nodule.yaml \
		--data $(CT_MODEL_BUILD)/demo/manifest.csv --out $(CT_MODEL_BUILD)/run; \
	mkdir -p resources/models; \
	cp $(CT_MODEL_BUILD)/run/model.safetensors resources/models/$(CT_MODEL_NAME).safetensors.tmp; \
	cp $(CT_MODEL_BUILD)/run/model_card.md resources/models/$(CT_MODEL_NAME).md.tmp; \
	mv resources/models/$(CT_MODEL_NAME).safetensors.tmp resources/models/$(CT_MODEL_NAME).safetensors; \
	mv resources/models/$(CT_MODEL_NAME).md.tmp resources/models/$(CT_MODEL_NAME).md; \
	echo "make model-ct: $$(( $$(date +%s) - start )) s; wrote resources/models/$(CT_MODEL_NAME).safetensors and .md"

clean-venv:
	rm -rf $(VENV)
