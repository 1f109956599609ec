# Two entry points for a fresh machine with Python 3.11+: `make demo` and `make test`.
# Each creates the virtual environment when it is missing and installs the project into it.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint schema bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# A non-editable install: the demo and the tests run the package as users get it.
demo: $(BIN)/python
	$(BIN)/python -m pip install --quiet .
	$(BIN)/tgw demo

test: $(BIN)/python
	$(BIN)/python -m pip install --quiet ".[dev,postgres,cim]"
	$(BIN)/pytest

lint: $(BIN)/python
	$(BIN)/ruff check gateway conformance tests benchmarks
	$(BIN)/ruff format --check gateway conformance tests benchmarks

schema: $(BIN)/python
	$(BIN)/tgw schema

bench: $(BIN)/python
	$(BIN)/python -m pip install --quiet ".[dev,postgres,cim]"
	$(BIN)/python benchmarks/bench_model.py
	$(BIN)/python benchmarks/bench_store.py
	$(BIN)/python benchmarks/bench_cim.py
	$(BIN)/python benchmarks/bench_auction.py
	$(BIN)/python benchmarks/bench_network_clearing.py
	$(BIN)/python benchmarks/bench_market_run.py
	$(BIN)/python benchmarks/bench_ei.py
	$(BIN)/python benchmarks/bench_openadr2b.py
	$(BIN)/python benchmarks/bench_openadr2b_sign.py
	$(BIN)/python benchmarks/bench_openadr2b_poll.py

clean:
	rm -rf $(VENV) build dist .pytest_cache .ruff_cache
