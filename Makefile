# Two commands on a fresh machine: `make demo` and `make test`. Both install what they need, idempotently.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# Reinstall when the project's dependencies change; otherwise the stamp makes this a no-op.
DEPS_HASH := $(shell cat pyproject.toml | sha256sum | cut -c1-12)
STAMP := $(VENV)/.installed-$(DEPS_HASH)
# `make demo` alone installs the demo extra only (server, plot: ~400 MB, not the test/bench/cloud extras);
# after `make install` or `make test` the full install is a superset and the demo uses it as it is.
DEMO_STAMP := $(VENV)/.installed-demo-$(DEPS_HASH)
# the web UI's browser tests drive Debian's Chromium through Playwright (no browser download)
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
NPM_STAMP := node_modules/.installed-$(shell cat package.json package-lock.json 2>/dev/null | sha256sum | cut -c1-12)
EXTRAS := server,rabbitmq,postgres,azure,s3,lightgbm,onnx,dvc,plot,fleet,dev
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install demo test lint unit integration bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip 2>&1 | { grep -v "is ignored" || true; }
	# xgboost-cpu: the same xgboost module without the 300 MB CUDA runtime the plain wheel pulls in
	set -o pipefail; $(PIP) install --quiet -e '.[$(EXTRAS)]' xgboost-cpu 2>&1 | { grep -v "is ignored" || true; }
	rm -f $(VENV)/.installed-* && touch $@

$(DEMO_STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	set -o pipefail; $(PIP) install --quiet -e '.[demo]' 2>&1 | { grep -v "is ignored" || true; }
	rm -f $(VENV)/.installed-demo-* && touch $@

install: $(STAMP)

$(CHROMIUM):
	$(SUDO) apt-get install -y chromium || { $(SUDO) apt-get update && $(SUDO) apt-get install -y chromium; }

$(NPM_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	rm -f node_modules/.installed-* && touch $@

demo: $(if $(wildcard $(STAMP)),$(STAMP),$(DEMO_STAMP))
	$(VENV)/bin/maestrale demo

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench examples
	$(VENV)/bin/ruff format --check src tests examples
	$(VENV)/bin/mypy src/maestrale

test: $(STAMP) $(NPM_STAMP) $(CHROMIUM) lint
	$(PY) -m pytest -q

unit: $(STAMP)
	$(PY) -m pytest -q tests/unit

integration: $(STAMP) $(NPM_STAMP)
	$(PY) -m pytest -q tests/integration

bench: $(STAMP)
	$(PY) bench/registry_vs_mlflow.py
	$(PY) bench/bus.py
	$(PY) bench/training.py
	$(PY) bench/fleet_training.py
	bash bench/setup_evidently.sh
	$(PY) bench/drift.py
	$(PY) bench/ingest.py
	$(PY) bench/serving.py
	$(PY) bench/limits.py
	$(PY) bench/ui.py

clean:
	rm -rf $(VENV) node_modules .pytest_cache .ruff_cache .demo test-results
