# The two README commands: `make run` and `make test`. Both set up .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint format schemas clean e2e graphiql-assets

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/quarterback serve --demo

# make itself exits 2 on any failure; pytest's own exit code is kept in .venv/pytest-exit-code
# so that .ci/run can pass it through.
test: install
	@rm -f $(VENV)/pytest-exit-code
	@$(BIN)/python -m pytest $(PYTEST_ARGS) || { code=$$?; echo $$code > $(VENV)/pytest-exit-code; exit $$code; }

lint: install
	$(BIN)/ruff check service tests bench
	$(BIN)/ruff format --check service tests bench
	$(BIN)/mypy

format: install
	$(BIN)/ruff check --fix service tests bench
	$(BIN)/ruff format service tests bench

schemas: install
	$(BIN)/quarterback schemas

# GraphiQL in headless Debian Chromium against `quarterback serve --demo` (no browser download:
# apt-get install chromium chromium-driver).
e2e: install
	$(BIN)/python -m pytest tests/test_graphiql_browser.py -q -rs

# Refresh GraphiQL's vendored scripts from the npm registry (after a Strawberry upgrade).
graphiql-assets: install
	$(BIN)/python -m service.graphql.graphiql

clean:
	rm -rf $(VENV) quarterback.db *.egg-info
