# Newcomer entry points: `make demo` and `make test` (both set up .venv first).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-slow fuzz bench clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m migrate.demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow --run-slow

fuzz: $(STAMP)
	TF_MIGRATE_FUZZ_EXAMPLES=10000 $(BIN)/python -m pytest -q tests/test_properties.py --run-slow

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_migrate.py

clean:
	rm -rf $(VENV) .pytest_cache demo-out
