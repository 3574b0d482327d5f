# The two commands of README.md: `make quickstart` and `make test`; `make docs` and `make notebooks` for the site.
# Each creates .venv (once) and installs the project with the pinned versions of constraints.txt.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install quickstart test lint docs notebooks clean

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

# The documentation site (docs/, mkdocs.yml) into site/: offline, warnings are errors.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

# Both notebooks, executed with their own settings into build/notebooks/ (the committed ones stay
# without outputs, as tests/test_notebooks.py requires); the next `make docs` shows the outputs.
# Their plots go under FORECASTER_HOME (default ./.forecaster).
NOTEBOOKS := $(wildcard notebooks/*.ipynb)
notebooks: $(STAMP)
	mkdir -p build/notebooks
	FORECASTER_HOME=$${FORECASTER_HOME:-$(CURDIR)/.forecaster} $(BIN)/jupyter nbconvert --to notebook --execute \
	  --NbConvertApp.use_output_suffix=False --ExecutePreprocessor.timeout=1800 \
	  --ExecutePreprocessor.kernel_name=python3 \
	  --output-dir build/notebooks $(NOTEBOOKS)

clean:
	rm -rf $(VENV) .pytest_cache site build/notebooks build/mkdocs-jupyter
