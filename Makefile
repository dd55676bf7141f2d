# The two README commands: `make run` and `make test`. Both set up .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint format schemas clean

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

clean:
	rm -rf $(VENV) quarterback.db *.egg-info
