# The two commands of README.md: `make quickstart` and `make test`.
# Each creates .venv (once) and installs the project with the pinned versions of constraints.txt.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install quickstart test lint clean

# pip prints what it downloads and installs (the first install takes minutes: torch, MLflow).
$(STAMP): pyproject.toml constraints.txt
	@echo "==> creating $(VENV) with $(PYTHON)"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "==> upgrading pip"
	$(BIN)/python -m pip install --quiet --upgrade pip
	@echo "==> installing the project and its pinned dependencies (constraints.txt)"
	$(BIN)/python -m pip install -c constraints.txt -e ".[dev]"
	@echo "==> installed; run 'make quickstart' or 'make test'"
	touch $(STAMP)

install: $(STAMP)

quickstart: $(STAMP)
	$(BIN)/forecaster quickstart

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check forecaster pipelines service tests benchmarks
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) .pytest_cache
