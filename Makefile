# The two commands of the README: `make demo` and `make test`. Both build .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv demo test lint typecheck imports unit unit-pure bench clean

venv: $(STAMP)

# Reinstall (which recompiles the mypyc-built core) whenever the project or the core changes.
$(STAMP): pyproject.toml setup.py $(wildcard sync/core/*.py)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: venv
	$(BIN)/leadsync validate config/portals/example.yaml
	$(BIN)/leadsync demo --config config/portals/example.yaml

lint: venv
	$(BIN)/ruff check sync tests bench
	$(BIN)/ruff format --check sync tests bench

# The package strictly; the tests and benchmarks with the same strict config (pyproject's [tool.mypy]).
typecheck: venv
	$(BIN)/mypy --strict sync
	$(BIN)/mypy tests bench

imports: venv
	$(BIN)/lint-imports

unit: venv
	LEADSYNC_EXPECT_CORE=compiled $(BIN)/python -m pytest

# The same core tests on the pure-Python source: a copy of the tree without the compiled modules.
unit-pure: venv
	rm -rf .pure && mkdir .pure && cp -r sync tests config pyproject.toml .pure/ && find .pure -name '*.so' -delete
	cd .pure && LEADSYNC_EXPECT_CORE=pure ../$(BIN)/python -m pytest -q -p no:cacheprovider tests/core
	rm -rf .pure

test: lint typecheck imports unit unit-pure

bench: venv
	$(BIN)/python bench/score_bench.py
	$(BIN)/python bench/api_bench.py
	$(BIN)/python bench/idle_bench.py
	$(BIN)/python bench/accounts_bench.py
	$(BIN)/python bench/report_bench.py
	$(BIN)/python bench/stream_bench.py
	$(BIN)/python bench/speed_bench.py
	$(BIN)/python bench/train_bench.py
	$(BIN)/python bench/agency_bench.py
	$(BIN)/python bench/rescore_bench.py
	$(BIN)/python bench/snapshot_bench.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis .pure build *.so sync/core/*.so
