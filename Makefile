# Every target that needs Python depends on the virtualenv stamp, so `make demo` and
# `make test` work from a fresh clone with nothing but python3 (3.11+) and node/npm.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
ENV    ?= dev
CDK    := npx --no-install cdk

# aws_stack picks the project-local Node 24 for jsii itself (see aws_stack/__init__.py).

.PHONY: demo test typecheck lint synth bench bench-smoke plan deploy smoke destroy clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

demo: $(STAMP) $(NODE_STAMP)
	$(BIN)/python -m local_stack demo

# apt packages the tests and benchmarks need (wrk), installed when missing.
SYSTEM_PACKAGES := sh scripts/system-packages

test: $(STAMP) $(NODE_STAMP)
	$(SYSTEM_PACKAGES)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest

# Zero errors over the packages that deploy or run in the clouds (configured in pyproject.toml).
typecheck: $(STAMP)
	$(BIN)/mypy

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Both stacks' desired state, offline: CloudFormation templates in cdk.out/, GCP as JSON in build/.
synth: $(STAMP) $(NODE_STAMP)
	$(CDK) synth --quiet -c env=$(ENV)
	mkdir -p build
	$(BIN)/python -m gcp_stack synth --env $(ENV) > build/gcp-$(ENV).json
	@echo "templates: cdk.out/  GCP desired state: build/gcp-$(ENV).json"

bench: $(STAMP)
	$(SYSTEM_PACKAGES)
	$(BIN)/python -m bench

bench-smoke: $(STAMP)
	$(SYSTEM_PACKAGES)
	$(BIN)/python -m bench --smoke

# Both clouds through one plan and one question (deployment/system.py): `make plan` shows
# `cdk diff` and the GCP plan with a line per cloud; deploy and destroy show both, ask once,
# then run GCP, AWS, GCP again for the uptime check (destroy: AWS first). AUTO_APPROVE=1
# skips the question, except for prod, which needs CONFIRM=prod (or its name typed).
APPROVAL = $(if $(filter 1 true yes,$(AUTO_APPROVE)),--auto-approve) $(if $(CONFIRM),--confirm $(CONFIRM))
SYSTEM = $(BIN)/python -m deployment

plan: $(STAMP) $(NODE_STAMP)
	$(SYSTEM) plan --env $(ENV) --cdk "$(CDK)"

deploy: $(STAMP) $(NODE_STAMP)
	$(BIN)/python -m deployment.preflight --env $(ENV)
	$(SYSTEM) deploy --env $(ENV) --cdk "$(CDK)" $(APPROVAL)

smoke: $(STAMP)
	$(BIN)/python -m smoke --env $(ENV)

destroy: $(STAMP) $(NODE_STAMP)
	$(SYSTEM) destroy --env $(ENV) --cdk "$(CDK)" $(APPROVAL)

clean:
	rm -rf $(VENV) node_modules cdk.out build .pytest_cache .local_stack
