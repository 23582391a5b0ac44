# The single entry point: `make run` starts the local stack, `make test` runs every test and check.
# Both create the virtual environment on first use (Python from .python-version via pyenv, else python3.13).
SHELL := /bin/bash
PYTHON ?= $(shell pyenv which python 2>/dev/null || command -v python3.13)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# checkov pins an old boto3 that clashes with aws-sam-cli's: it gets an environment of its own.
CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed
export SAM_CLI_TELEMETRY := 0

.PHONY: install browser run services test lint format typecheck build deploy bench models docs clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python 3.13 not found: install it (pyenv install 3.13) or set PYTHON=" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet uv==0.13.9
	$(VENV)/bin/uv pip install --quiet --python $(PY) -e ".[dev]"
	touch $(STAMP)

$(CHECKOV_STAMP):
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet checkov==3.3.30
	touch $(CHECKOV_STAMP)

# The dashboard's browser test drives Debian's Chromium: Playwright's own browser download cannot work offline.
browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium; }

# The handlers import `core` and `tasks` from functions/, as Lambda does from the package root.
DEVSTACK := PYTHONPATH=functions:. $(PY) -m devstack

run: $(STAMP) ## the whole system on http://127.0.0.1:3000 (PORT to change)
	$(DEVSTACK)

services: $(STAMP) ## only the emulated AWS services and the SQS poller, for `sam local start-api`
	$(DEVSTACK) --no-api --write-env-vars env.json

test: $(STAMP) $(CHECKOV_STAMP) browser lint typecheck ## unit, integration, template and end-to-end tests
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

typecheck: $(STAMP)
	$(VENV)/bin/mypy functions lrt devstack bench tools

build: $(STAMP) ## package the functions as Lambda would get them (no Docker needed)
	$(VENV)/bin/sam build

deploy: build ## deploy to the AWS account and region of your credentials; asks for the parameters the first time
	$(VENV)/bin/sam deploy $(if $(wildcard samconfig.toml),,--guided)

bench: $(STAMP)
	PYTHONPATH=functions:. $(PY) -m bench

models: $(STAMP) ## rewrite functions/core/adapters/botocore_models after a botocore upgrade or a newly called operation
	$(PY) tools/trim_botocore_models.py

docs: $(STAMP) ## rewrite the lifecycle's diagram and table in docs/design.md from functions/core/domain/lifecycle.py
	$(PY) tools/lifecycle_doc.py

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache
