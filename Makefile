# The map of what a developer can do. Logic lives in scripts/ and the package.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev

.PHONY: help venv run test lint format bench seed env up down clean k8s-check k8s-generate

help: ## List the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): application/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e 'application[dev]'
	touch $(STAMP)

venv: $(STAMP) ## Create .venv with tagwatch and the dev tools

run: $(STAMP) ## Start the API on :8000 and the collector (sample data unless X_BEARER_TOKEN is set)
	$(BIN)/tagwatch run

test: $(STAMP) ## Run the whole test suite
	cd application && ../$(BIN)/pytest

lint: $(STAMP) ## ruff lint and format check
	$(BIN)/ruff check application
	$(BIN)/ruff format --check application
	$(BIN)/ruff check --config application/pyproject.toml bench scripts deploy/kubernetes
	$(BIN)/ruff format --config application/pyproject.toml --check bench scripts deploy/kubernetes

format: $(STAMP) ## Apply ruff formatting and safe fixes
	$(BIN)/ruff check --fix application
	$(BIN)/ruff format application
	$(BIN)/ruff check --config application/pyproject.toml --fix bench scripts deploy/kubernetes
	$(BIN)/ruff format --config application/pyproject.toml bench scripts deploy/kubernetes

seed: $(STAMP) ## Fill data/tagwatch.db with 100,000 sample posts (POSTS=N to change)
	$(BIN)/tagwatch seed --posts $${POSTS:-100000}

bench: $(STAMP) ## Seed 1M posts, load the API under gunicorn, write docs/performance.md
	$(BIN)/python bench/run.py

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
