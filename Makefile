# The two commands of the README: `make demo` and `make test`. Both build .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_NOW := 2026-11-01T12:00:00Z

.PHONY: venv demo test lint typecheck imports unit bench clean

venv: $(STAMP)

# Reinstall (which recompiles the mypyc-built core) whenever the project or the core changes.
$(STAMP): pyproject.toml setup.py $(wildcard sync/core/*.py)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: venv
	$(BIN)/leadsync validate config/portals/example.yaml
	$(BIN)/leadsync score --config config/portals/example.yaml \
		--snapshot config/examples/acme-eu.snapshot.json --now $(DEMO_NOW)

lint: venv
	$(BIN)/ruff check sync tests bench
	$(BIN)/ruff format --check sync tests bench

typecheck: venv
	$(BIN)/mypy --strict sync

imports: venv
	$(BIN)/lint-imports

unit: venv
	$(BIN)/python -m pytest

test: lint typecheck imports unit

bench: venv
	$(BIN)/python bench/score_bench.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
