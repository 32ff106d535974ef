# Every target that needs Python depends on the virtualenv stamp, so `make demo` and
# `make test` work from a fresh clone with nothing but python3 (3.11+) and node/npm.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
ENV    ?= dev

# jsii runs on the project-local Node 24 when it is installed (faster, no end-of-life banner).
export JSII_NODE := $(if $(wildcard node_modules/node/bin/node),$(CURDIR)/node_modules/node/bin/node,)
export JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION := 1

.PHONY: demo test lint synth bench bench-smoke deploy smoke destroy clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

demo: $(STAMP)
	$(BIN)/python -m local_stack demo

test: $(STAMP) $(NODE_STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) node_modules cdk.out .pytest_cache .local_stack
