# Every target creates the venv first; torch is pinned so pip takes the local CPU build.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint imports format docs clean

# pyproject.toml states compatible ranges; constraints.txt the exact versions the tests pass with.
$(STAMP): pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip >/dev/null 2>&1 || true
	$(BIN)/pip install -q -c constraints.txt -e '.[dev,serve,docs]' torch==2.13.0
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/archlab demo $(if $(DATA),--data $(DATA),)

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup $(PYTEST_ARGS)

lint: imports
	$(BIN)/ruff check archlab tests bench docs/hooks
	$(BIN)/ruff format --check archlab tests bench docs/hooks

# The import contracts in pyproject.toml: layers (docs/architecture.md) and no cycles.
imports: $(STAMP)
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff format archlab tests bench docs/hooks
	$(BIN)/ruff check --fix archlab tests bench docs/hooks

# The documentation site (mkdocs.yml) into site/; --strict: a broken link or anchor fails it.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) runs site .pytest_cache .import_linter_cache .grimp_cache
