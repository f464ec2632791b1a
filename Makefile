# Every target creates the venv first; torch is pinned so pip takes the local CPU build.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint imports format clean

# pyproject.toml states compatible ranges; constraints.txt the exact versions the tests pass with.
$(STAMP): pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip >/dev/null 2>&1 || true
	$(BIN)/pip install -q -c constraints.txt -e '.[dev,serve]' torch==2.13.0
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/archlab demo $(if $(DATA),--data $(DATA),)

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup $(PYTEST_ARGS)

lint: imports
	$(BIN)/ruff check archlab tests bench
	$(BIN)/ruff format --check archlab tests bench

# The import contracts in pyproject.toml: layers (docs/architecture.md) and no cycles.
imports: $(STAMP)
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff format archlab tests bench
	$(BIN)/ruff check --fix archlab tests bench

clean:
	rm -rf $(VENV) runs .pytest_cache .import_linter_cache .grimp_cache
